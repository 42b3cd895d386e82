// The planner: turns a parsed ONNX graph into the steps `Model::run` executes (operator
// checks, topological order, shape inference with a symbolic batch dimension, constant
// folding, weight packing, dead-step elimination, Relu fusion, buffer assignment).

#include "onnx/kernels.hpp"
#include "onnx/plan.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <functional>
#include <queue>
#include <set>
#include <unordered_map>

namespace mlctl::onnx::detail {

namespace {

std::string node_text(const NodeDef& node) {
  const std::string id =
      node.name.empty() ? std::to_string(node.index) : "'" + printable(node.name) + "'";
  return "node " + id + " (" + printable(node.op_type) + ")";
}

bool supported_op(const std::string& op) {
  static const std::set<std::string> k_ops = {
      "Gemm",    "MatMul",   "Add",      "Sub",     "Mul",        "Div",
      "Relu",    "Sigmoid",  "Tanh",     "Softmax", "LogSoftmax", "Flatten",
      "Reshape", "Identity", "Constant", "Cast",    "ArgMax"};
  return k_ops.count(op) != 0;
}

class Planner {
public:
  Planner(Plan& plan, ModelDef& def) : m_plan(plan), m_def(def) {}

  void build() {
    check_operators();
    index_values();
    const auto order = topological_order();
    create_inputs();
    for (const auto i : order) {
      plan_node(m_def.nodes[i]);
    }
    bind_outputs();
    eliminate_dead_steps();
    fuse_relu();
    resolve_roots();
    assign_slots();
  }

private:
  [[noreturn]] void corrupt(const std::string& what) const {
    throw Error(ErrorKind::corrupt, m_plan.name + ": " + what);
  }
  [[noreturn]] void unsupported(const std::string& what) const {
    throw Error(ErrorKind::invalid_input, m_plan.name + ": " + what);
  }

  void check_operators() {
    if (m_def.opset < k_min_opset || m_def.opset > k_max_opset) {
      unsupported("operator set " + std::to_string(m_def.opset) + " is not supported (" +
                  std::to_string(k_min_opset) + " to " + std::to_string(k_max_opset) + ")");
    }
    for (const auto& node : m_def.nodes) {
      const bool default_domain = node.domain.empty() || node.domain == "ai.onnx";
      if (!default_domain || !supported_op(node.op_type)) {
        const std::string op = default_domain ? node.op_type : node.domain + "." + node.op_type;
        const std::string id =
            node.name.empty() ? std::to_string(node.index) : "'" + printable(node.name) + "'";
        unsupported("unsupported operator '" + printable(op) + "' (node " + id + ")");
      }
    }
  }

  // Records who defines each name: graph inputs, initializers, node outputs (each exactly once).
  void index_values() {
    auto define = [&](const std::string& name, const std::string& by) {
      if (name.empty()) {
        corrupt(by + " defines a value with an empty name");
      }
      if (!m_defined.insert(name).second) {
        corrupt("value '" + printable(name) + "' is defined twice (again by " + by + ")");
      }
    };
    for (const auto& input : m_def.inputs) {
      define(input.name, "graph input");
    }
    for (std::size_t i = 0; i < m_def.initializers.size(); ++i) {
      define(m_def.initializers[i].name, "initializer");
      m_initializer_index[m_def.initializers[i].name] = i;
    }
    for (std::size_t i = 0; i < m_def.nodes.size(); ++i) {
      for (const auto& output : m_def.nodes[i].outputs) {
        if (output.empty()) {
          continue; // an omitted optional output
        }
        define(output, node_text(m_def.nodes[i]));
        m_producer[output] = i;
      }
    }
  }

  // Kahn's algorithm; ties keep the file's order, so the plan is deterministic.
  std::vector<std::size_t> topological_order() {
    const std::size_t n = m_def.nodes.size();
    std::vector<std::size_t> pending(n, 0);
    std::vector<std::vector<std::size_t>> consumers(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::set<std::size_t> deps;
      for (const auto& input : m_def.nodes[i].inputs) {
        if (input.empty()) {
          continue;
        }
        if (m_defined.count(input) == 0) {
          corrupt(node_text(m_def.nodes[i]) + " reads '" + printable(input) +
                  "', which is not a graph input, an initializer or a node output");
        }
        const auto it = m_producer.find(input);
        if (it != m_producer.end() && deps.insert(it->second).second) {
          consumers[it->second].push_back(i);
          ++pending[i];
        }
      }
    }
    std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
    for (std::size_t i = 0; i < n; ++i) {
      if (pending[i] == 0) {
        ready.push(i);
      }
    }
    std::vector<std::size_t> order;
    order.reserve(n);
    while (!ready.empty()) {
      const auto i = ready.top();
      ready.pop();
      order.push_back(i);
      for (const auto c : consumers[i]) {
        if (--pending[c] == 0) {
          ready.push(c);
        }
      }
    }
    if (order.size() != n) {
      for (std::size_t i = 0; i < n; ++i) {
        if (pending[i] != 0) {
          corrupt("the graph has a cycle (through " + node_text(m_def.nodes[i]) + ")");
        }
      }
    }
    return order;
  }

  static std::int64_t checked_mul(std::int64_t a, std::int64_t b, bool& overflow) {
    std::int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) {
      overflow = true;
      return 0;
    }
    return r;
  }

  // Checks a new value's shape: at most one batch dimension, no zero-sized dimension, and a
  // size within the limits.
  void check_shape(const Shape& shape, const std::string& what) const {
    int batch_dims = 0;
    std::int64_t count = 1;
    bool overflow = false;
    for (const auto& d : shape) {
      if (d.v <= 0) {
        unsupported(what + ": shape " + shape_text(shape) + " has a zero-sized dimension");
      }
      batch_dims += d.batch ? 1 : 0;
      count = checked_mul(count, d.v, overflow);
    }
    if (batch_dims > 1) {
      unsupported(what + ": shape " + shape_text(shape) +
                  " uses the batch dimension more than once");
    }
    if (overflow || count > k_max_value_elements) {
      corrupt(what + ": shape " + shape_text(shape) + " is too large");
    }
  }

  int add_value(const std::string& name, DType dtype, Shape shape, Value::Kind kind,
                const std::string& what) {
    check_shape(shape, what);
    Value v;
    v.name = name;
    v.dtype = dtype;
    v.shape = std::move(shape);
    v.kind = kind;
    const int id = static_cast<int>(m_plan.values.size());
    v.root = kind == Value::Kind::computed ? id : -1;
    m_plan.values.push_back(std::move(v));
    if (!name.empty()) {
      m_value_of[name] = id;
    }
    return id;
  }

  int add_constant(const std::string& name, DType dtype, Constant c, const std::string& what) {
    Shape shape;
    for (const auto d : c.dims) {
      shape.push_back(Dim{d, false});
    }
    const int id = add_value(name, dtype, std::move(shape), Value::Kind::constant, what);
    m_plan.values.back().index = static_cast<int>(m_plan.constants.size());
    m_plan.constants.push_back(std::move(c));
    return id;
  }

  int constant_from_tensor(const std::string& name, TensorData& t, const std::string& what) {
    if (!t.decoded) {
      unsupported(what + ": data type " + detail::onnx_type_name(t.type) +
                  " is not supported (FLOAT or INT64)");
    }
    Constant c;
    c.dims = t.dims;
    c.f32 = std::move(t.f32);
    c.i64 = std::move(t.i64);
    return add_constant(name, t.type == detail::k_type_float ? DType::f32 : DType::i64,
                        std::move(c), what);
  }

  void create_inputs() {
    for (const auto& decl : m_def.inputs) {
      const std::string what = "input '" + printable(decl.name) + "'";
      DType dtype = DType::f32;
      if (decl.type == detail::k_type_float) {
        dtype = DType::f32;
      } else if (decl.type == detail::k_type_int64) {
        dtype = DType::i64;
      } else if (decl.type == detail::k_type_undefined) {
        unsupported(what + " is not a tensor with a data type");
      } else {
        unsupported(what + ": data type " + detail::onnx_type_name(decl.type) +
                    " is not supported (FLOAT or INT64)");
      }
      if (!decl.has_shape) {
        unsupported(what + " has no declared shape");
      }
      Shape shape;
      int dynamic = 0;
      for (const auto& d : decl.dims) {
        if (d.fixed && d.value < 0) {
          corrupt(what + ": negative dimension " + std::to_string(d.value));
        }
        if (d.fixed) {
          shape.push_back(Dim{d.value, false});
        } else {
          shape.push_back(Dim{1, true});
          ++dynamic;
        }
      }
      if (dynamic > 1) {
        unsupported(what + " has " + std::to_string(dynamic) +
                    " dynamic dimensions; only one (the batch dimension) is supported");
      }
      const int id = add_value(decl.name, dtype, shape, Value::Kind::input, what);
      m_plan.values.back().index = static_cast<int>(m_plan.input_values.size());
      m_plan.input_values.push_back(id);
      TensorInfo info{decl.name, datatype_name(dtype), {}};
      for (const auto& d : shape) {
        info.shape.push_back(d.batch ? -1 : d.v);
      }
      m_plan.inputs.push_back(std::move(info));
    }
  }

  // Returns the value a node input names, creating initializers' values on first use.
  int value(const std::string& name, const std::string& what) {
    const auto it = m_value_of.find(name);
    if (it != m_value_of.end()) {
      return it->second;
    }
    const auto init = m_initializer_index.find(name);
    if (init != m_initializer_index.end()) {
      auto& t = m_def.initializers[init->second];
      return constant_from_tensor(name, t, what + ": initializer '" + printable(name) + "'");
    }
    // Defined but not yet planned cannot happen in topological order; defensive.
    corrupt(what + " reads '" + printable(name) + "' before it is computed");
  }

  const Value& val(int id) const { return m_plan.values[static_cast<std::size_t>(id)]; }
  bool is_constant(int id) const { return id < 0 || val(id).kind == Value::Kind::constant; }

  std::int64_t int_attr(const NodeDef& node, const std::string& what, std::string_view name,
                        std::int64_t fallback) const {
    const Attribute* a = node.attribute(name);
    if (a == nullptr) {
      return fallback;
    }
    if (a->kind != Attribute::Kind::i) {
      corrupt(what + ": attribute '" + std::string(name) + "' must be an integer");
    }
    return a->i;
  }

  float float_attr(const NodeDef& node, const std::string& what, std::string_view name,
                   float fallback) const {
    const Attribute* a = node.attribute(name);
    if (a == nullptr) {
      return fallback;
    }
    if (a->kind != Attribute::Kind::f) {
      corrupt(what + ": attribute '" + std::string(name) + "' must be a float");
    }
    return a->f;
  }

  // Normalizes `axis` for a rank-`rank` tensor; `inclusive` allows `rank` itself (Flatten).
  std::int64_t normalize_axis(std::int64_t axis, std::size_t rank, bool inclusive,
                              const std::string& what) const {
    const auto r = static_cast<std::int64_t>(rank);
    const std::int64_t hi = inclusive ? r : r - 1;
    if (axis < -r || axis > hi) {
      corrupt(what + ": axis " + std::to_string(axis) + " is out of range for rank " +
              std::to_string(rank));
    }
    return axis < 0 ? axis + r : axis;
  }

  void require_inputs(const NodeDef& node, const std::string& what, std::size_t min,
                      std::size_t max) const {
    std::size_t present = node.inputs.size();
    while (present > 0 && node.inputs[present - 1].empty()) {
      --present;
    }
    if (present < min || present > max) {
      corrupt(what + " has " + std::to_string(present) + " inputs, expected " +
              std::to_string(min) + (max != min ? " to " + std::to_string(max) : ""));
    }
    for (std::size_t i = 0; i < min; ++i) {
      if (node.inputs[i].empty()) {
        corrupt(what + ": input " + std::to_string(i) + " is required");
      }
    }
    if (node.outputs.empty() || node.outputs[0].empty()) {
      corrupt(what + " has no output");
    }
    for (std::size_t i = 1; i < node.outputs.size(); ++i) {
      if (!node.outputs[i].empty()) {
        unsupported(what + ": optional output '" + printable(node.outputs[i]) +
                    "' is not supported");
      }
    }
  }

  void require_f32(int id, const std::string& what) const {
    if (val(id).dtype != DType::f32) {
      unsupported(what + ": '" + printable(val(id).name) +
                  "' is INT64; this operator runs on FP32 only");
    }
  }

  // Adds a step, or evaluates it now when all its inputs are constants (constant folding).
  void emit(Step step, const std::string& out_name, DType dtype, Shape shape) {
    const bool foldable =
        std::all_of(step.in.begin(), step.in.end(), [&](int id) { return is_constant(id); });
    if (foldable) {
      fold(step, out_name, dtype, std::move(shape));
      return;
    }
    step.out = add_value(out_name, dtype, std::move(shape), Value::Kind::computed, step.what);
    if (step.op == Op::alias) {
      const auto& src = val(step.in[0]);
      m_plan.values.back().root = src.kind == Value::Kind::computed ? src.root : -1;
    }
    m_plan.steps.push_back(std::move(step));
  }

  void fold(Step& step, const std::string& out_name, DType dtype, Shape shape) {
    check_shape(shape, step.what);
    Workspace ws;
    ws.shapes.resize(m_plan.values.size() + 1);
    ws.ptr.resize(m_plan.values.size() + 1);
    for (const int id : step.in) {
      if (id < 0) {
        continue;
      }
      const auto& c = m_plan.constants[static_cast<std::size_t>(val(id).index)];
      ws.shapes[static_cast<std::size_t>(id)] = c.dims;
      ws.ptr[static_cast<std::size_t>(id)] = val(id).dtype == DType::f32
                                                 ? static_cast<const void*>(c.f32.data())
                                                 : static_cast<const void*>(c.i64.data());
    }
    Constant result;
    for (const auto& d : shape) {
      result.dims.push_back(d.v);
    }
    const auto count = static_cast<std::size_t>(product(result.dims));
    step.packed = -1;
    step.out = static_cast<int>(m_plan.values.size()); // the id the constant will get
    ws.shapes[static_cast<std::size_t>(step.out)] = result.dims;
    if (step.op == Op::alias) {
      const auto& src = m_plan.constants[static_cast<std::size_t>(val(step.in[0]).index)];
      result.f32 = src.f32;
      result.i64 = src.i64;
    } else if (dtype == DType::f32) {
      result.f32.resize(count);
      execute(m_plan, step, ws, result.f32.data());
    } else {
      result.i64.resize(count);
      execute(m_plan, step, ws, result.i64.data());
    }
    add_constant(out_name, dtype, std::move(result), step.what);
  }

  static Step make_step(Op op, const std::string& what, std::vector<int> in) {
    Step s;
    s.op = op;
    s.in = std::move(in);
    s.what = what;
    return s;
  }

  // numpy multidirectional broadcasting of two symbolic shapes.
  Shape broadcast(const Shape& a, const Shape& b, const std::string& what) const {
    const std::size_t rank = std::max(a.size(), b.size());
    Shape out(rank);
    for (std::size_t i = 0; i < rank; ++i) {
      const Dim da = i < rank - a.size() ? Dim{} : a[i - (rank - a.size())];
      const Dim db = i < rank - b.size() ? Dim{} : b[i - (rank - b.size())];
      if (da == db) {
        out[i] = da;
      } else if (!da.batch && da.v == 1) {
        out[i] = db;
      } else if (!db.batch && db.v == 1) {
        out[i] = da;
      } else {
        corrupt(what + ": shapes " + shape_text(a) + " and " + shape_text(b) +
                " cannot be broadcast together");
      }
    }
    return out;
  }

  void plan_node(const NodeDef& node) {
    const std::string what = node_text(node);
    const std::string& op = node.op_type;
    const std::string out_name = node.outputs.empty() ? std::string() : node.outputs[0];

    if (op == "Constant") {
      plan_constant(node, what);
      return;
    }
    if (op == "Gemm" || op == "MatMul") {
      plan_matmul(node, what, op == "MatMul");
      return;
    }
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
      require_inputs(node, what, 2, 2);
      const int a = value(node.inputs[0], what);
      const int b = value(node.inputs[1], what);
      require_f32(a, what);
      require_f32(b, what);
      const Op kind = op == "Add"   ? Op::add
                      : op == "Sub" ? Op::sub
                      : op == "Mul" ? Op::mul
                                    : Op::div;
      Shape shape = broadcast(val(a).shape, val(b).shape, what);
      emit(make_step(kind, what, {a, b}), out_name, DType::f32, std::move(shape));
      return;
    }
    if (op == "Relu" || op == "Sigmoid" || op == "Tanh") {
      require_inputs(node, what, 1, 1);
      const int x = value(node.inputs[0], what);
      require_f32(x, what);
      const Op kind = op == "Relu" ? Op::relu : op == "Sigmoid" ? Op::sigmoid : Op::tanh;
      emit(make_step(kind, what, {x}), out_name, DType::f32, val(x).shape);
      return;
    }
    if (op == "Softmax" || op == "LogSoftmax") {
      require_inputs(node, what, 1, 1);
      const int x = value(node.inputs[0], what);
      require_f32(x, what);
      // Opset 13 changed Softmax from "flatten to 2-D at axis (default 1)" to "along axis
      // (default -1)".
      const bool legacy = m_def.opset < 13;
      Step s = make_step(op == "Softmax" ? Op::softmax : Op::log_softmax, what, {x});
      s.legacy_softmax = legacy;
      const auto rank = val(x).shape.size();
      if (rank == 0) {
        corrupt(what + ": input is a scalar");
      }
      s.axis = normalize_axis(int_attr(node, what, "axis", legacy ? 1 : -1), rank, false, what);
      emit(std::move(s), out_name, DType::f32, val(x).shape);
      return;
    }
    if (op == "Identity") {
      require_inputs(node, what, 1, 1);
      const int x = value(node.inputs[0], what);
      emit(make_step(Op::alias, what, {x}), out_name, val(x).dtype, val(x).shape);
      return;
    }
    if (op == "Flatten") {
      require_inputs(node, what, 1, 1);
      const int x = value(node.inputs[0], what);
      const Shape& in = val(x).shape;
      const auto axis = static_cast<std::size_t>(
          normalize_axis(int_attr(node, what, "axis", 1), in.size(), true, what));
      Shape out{Dim{1, false}, Dim{1, false}};
      for (std::size_t i = 0; i < in.size(); ++i) {
        Dim& d = out[i < axis ? 0 : 1];
        d.v *= in[i].v; // cannot overflow: the input's size was checked
        d.batch = d.batch || in[i].batch;
      }
      emit(make_step(Op::alias, what, {x}), out_name, val(x).dtype, std::move(out));
      return;
    }
    if (op == "Reshape") {
      plan_reshape(node, what);
      return;
    }
    if (op == "Cast") {
      require_inputs(node, what, 1, 1);
      const int x = value(node.inputs[0], what);
      const Attribute* to = node.attribute("to");
      if (to == nullptr || to->kind != Attribute::Kind::i) {
        corrupt(what + ": attribute 'to' is missing or not an integer");
      }
      DType target = DType::f32;
      if (to->i == detail::k_type_float) {
        target = DType::f32;
      } else if (to->i == detail::k_type_int64) {
        target = DType::i64;
      } else {
        unsupported(what + ": casting to " +
                    detail::onnx_type_name(static_cast<std::int32_t>(to->i)) +
                    " is not supported (FLOAT or INT64)");
      }
      Step s = make_step(target == val(x).dtype ? Op::alias : Op::cast, what, {x});
      s.to = target;
      emit(std::move(s), out_name, target, val(x).shape);
      return;
    }
    if (op == "ArgMax") {
      require_inputs(node, what, 1, 1);
      const int x = value(node.inputs[0], what);
      const Shape& in = val(x).shape;
      if (in.empty()) {
        corrupt(what + ": input is a scalar");
      }
      Step s = make_step(Op::argmax, what, {x});
      s.axis = normalize_axis(int_attr(node, what, "axis", 0), in.size(), false, what);
      s.keepdims = int_attr(node, what, "keepdims", 1) != 0;
      s.select_last = int_attr(node, what, "select_last_index", 0) != 0;
      Shape out;
      for (std::size_t i = 0; i < in.size(); ++i) {
        if (i != static_cast<std::size_t>(s.axis)) {
          out.push_back(in[i]);
        } else if (s.keepdims) {
          out.push_back(Dim{1, false});
        }
      }
      emit(std::move(s), out_name, DType::i64, std::move(out));
      return;
    }
    unsupported("unsupported operator '" + printable(op) + "' (" + what +
                ")"); // filtered before; defensive
  }

  void plan_constant(const NodeDef& node, const std::string& what) {
    require_inputs(node, what, 0, 0);
    if (node.attributes.size() != 1) {
      corrupt(what + ": needs exactly one value attribute");
    }
    const Attribute& a = node.attributes[0];
    Constant c;
    DType dtype = DType::f32;
    if (a.name == "value" && a.kind == Attribute::Kind::t) {
      TensorData t = a.t;
      constant_from_tensor(node.outputs[0], t, what);
      return;
    }
    if (a.name == "value_float" && a.kind == Attribute::Kind::f) {
      c.f32 = {a.f};
    } else if (a.name == "value_floats" && a.kind == Attribute::Kind::floats) {
      c.dims = {static_cast<std::int64_t>(a.floats.size())};
      c.f32 = a.floats;
    } else if (a.name == "value_int" && a.kind == Attribute::Kind::i) {
      c.i64 = {a.i};
      dtype = DType::i64;
    } else if (a.name == "value_ints" && a.kind == Attribute::Kind::ints) {
      c.dims = {static_cast<std::int64_t>(a.ints.size())};
      c.i64 = a.ints;
      dtype = DType::i64;
    } else {
      unsupported(what + ": attribute '" + printable(a.name) +
                  "' is not supported (value, value_float(s), value_int(s))");
    }
    add_constant(node.outputs[0], dtype, std::move(c), what);
  }

  void plan_matmul(const NodeDef& node, const std::string& what, bool matmul) {
    require_inputs(node, what, 2, matmul ? 2 : 3);
    const int a = value(node.inputs[0], what);
    const int b = value(node.inputs[1], what);
    const int c =
        node.inputs.size() > 2 && !node.inputs[2].empty() ? value(node.inputs[2], what) : -1;
    require_f32(a, what);
    require_f32(b, what);
    if (c >= 0) {
      require_f32(c, what);
    }
    Step s = make_step(Op::gemm, what, {a, b});
    if (c >= 0) {
      s.in.push_back(c);
    }
    s.matmul = matmul;
    const Shape& as = val(a).shape;
    const Shape& bs = val(b).shape;
    Dim m_dim;
    Dim k_dim;
    Dim kb_dim;
    Dim n_dim;
    Shape out;
    if (matmul) {
      if (as.empty() || bs.empty()) {
        corrupt(what + ": MatMul of a scalar");
      }
      if (bs.size() > 2) {
        unsupported(what + ": a second input of rank " + std::to_string(bs.size()) +
                    " (batched MatMul) is not supported");
      }
      k_dim = as.back();
      kb_dim = bs[0];
      n_dim = bs.size() == 2 ? bs[1] : Dim{1, false};
      out.assign(as.begin(), as.end() - 1);
      if (bs.size() == 2) {
        out.push_back(n_dim);
      }
    } else {
      if (as.size() != 2 || bs.size() != 2) {
        corrupt(what + ": A and B must be matrices, got " + shape_text(as) + " and " +
                shape_text(bs));
      }
      s.trans_a = int_attr(node, what, "transA", 0) != 0;
      s.trans_b = int_attr(node, what, "transB", 0) != 0;
      s.alpha = float_attr(node, what, "alpha", 1.0f);
      s.beta = float_attr(node, what, "beta", 1.0f);
      m_dim = s.trans_a ? as[1] : as[0];
      k_dim = s.trans_a ? as[0] : as[1];
      kb_dim = s.trans_b ? bs[1] : bs[0];
      n_dim = s.trans_b ? bs[0] : bs[1];
      out = {m_dim, n_dim};
      if (s.trans_a && m_dim.batch) {
        unsupported(what + ": transA over the batch dimension is not supported");
      }
    }
    if (!(k_dim == kb_dim)) {
      corrupt(what + ": inner dimensions differ: " + shape_text(as) + " times " + shape_text(bs));
    }
    if (k_dim.batch || n_dim.batch) {
      unsupported(what + ": a product over the batch dimension is not supported");
    }
    if (c >= 0) {
      const Shape& cs = val(c).shape;
      bool ok = cs.size() <= 2;
      for (std::size_t i = 0; ok && i < cs.size(); ++i) {
        const Dim& target = out[2 - cs.size() + i];
        ok = cs[i] == target || (!cs[i].batch && cs[i].v == 1);
      }
      if (!ok) {
        corrupt(what + ": C of shape " + shape_text(cs) + " does not broadcast to " +
                shape_text(out));
      }
    }
    const bool all_constant = is_constant(a) && is_constant(b) && is_constant(c);
    if (!all_constant && is_constant(b)) {
      // The common case: constant weights, packed once for the micro-kernel.
      const auto& bc = m_plan.constants[static_cast<std::size_t>(val(b).index)];
      kernels::PackedMatrix p;
      p.k = k_dim.v;
      p.n = n_dim.v;
      kernels::pack(bc.f32.data(), p.k, p.n, !matmul && s.trans_b, matmul ? 1.0f : s.alpha, p.data);
      p.finite =
          std::all_of(p.data.begin(), p.data.end(), [](float v) { return std::isfinite(v); });
      const bool c_is_row =
          c >= 0 && is_constant(c) && (val(c).shape.size() < 2 || val(c).shape[0].v == 1);
      if (c_is_row) {
        const auto& cc = m_plan.constants[static_cast<std::size_t>(val(c).index)];
        p.bias.assign(static_cast<std::size_t>(p.panels() * kernels::k_panel), 0.0f);
        for (std::int64_t j = 0; j < p.n; ++j) {
          p.bias[static_cast<std::size_t>(j)] =
              s.beta * cc.f32[cc.f32.size() == 1 ? 0 : static_cast<std::size_t>(j)];
        }
        s.bias_folded = true;
      }
      s.packed = static_cast<int>(m_plan.packed.size());
      m_plan.packed.push_back(std::move(p));
    }
    emit(std::move(s), node.outputs[0], DType::f32, std::move(out));
  }

  void plan_reshape(const NodeDef& node, const std::string& what) {
    require_inputs(node, what, 2, 2);
    const int x = value(node.inputs[0], what);
    const int shape_id = value(node.inputs[1], what);
    const Value& sv = val(shape_id);
    if (sv.kind != Value::Kind::constant) {
      unsupported(what +
                  ": the target shape must be a constant (an initializer or a Constant node)");
    }
    if (sv.dtype != DType::i64 || sv.shape.size() != 1) {
      corrupt(what + ": the target shape must be a 1-D INT64 tensor");
    }
    const auto& target = m_plan.constants[static_cast<std::size_t>(sv.index)].i64;
    const bool allowzero = int_attr(node, what, "allowzero", 0) != 0;
    const Shape& in = val(x).shape;
    // Sizes as (coefficient, powers of N).
    std::int64_t in_coef = 1;
    int in_batch = 0;
    for (const auto& d : in) {
      in_coef *= d.v;
      in_batch += d.batch ? 1 : 0;
    }
    Shape out(target.size());
    std::int64_t known_coef = 1;
    int known_batch = 0;
    int infer_at = -1;
    bool overflow = false;
    for (std::size_t i = 0; i < target.size(); ++i) {
      const std::int64_t t = target[i];
      if (t == -1) {
        if (infer_at >= 0) {
          corrupt(what + ": the target shape has more than one -1");
        }
        infer_at = static_cast<int>(i);
        continue;
      }
      if (t == 0 && !allowzero) {
        if (i >= in.size()) {
          corrupt(what + ": 0 at position " + std::to_string(i) +
                  " copies a dimension the input does not have");
        }
        out[i] = in[i];
      } else if (t <= 0) {
        corrupt(what + ": invalid target dimension " + std::to_string(t));
      } else {
        out[i] = Dim{t, false};
      }
      known_coef = checked_mul(known_coef, out[i].v, overflow);
      known_batch += out[i].batch ? 1 : 0;
    }
    if (overflow) {
      corrupt(what + ": the target shape is too large");
    }
    if (infer_at >= 0) {
      if (in_coef % known_coef != 0 || in_batch - known_batch < 0 || in_batch - known_batch > 1) {
        corrupt(what + ": cannot reshape " + shape_text(in) + " to " +
                shape_text(std::span<const std::int64_t>(target)));
      }
      out[static_cast<std::size_t>(infer_at)] =
          Dim{in_coef / known_coef, in_batch - known_batch == 1};
    } else if (known_coef != in_coef || known_batch != in_batch) {
      corrupt(what + ": cannot reshape " + shape_text(in) + " to " +
              shape_text(std::span<const std::int64_t>(target)));
    }
    emit(make_step(Op::alias, what, {x}), node.outputs[0], val(x).dtype, std::move(out));
  }

  void bind_outputs() {
    if (m_def.outputs.empty()) {
      corrupt("the graph has no outputs");
    }
    for (const auto& decl : m_def.outputs) {
      const auto it = m_value_of.find(decl.name);
      if (it == m_value_of.end()) {
        // An output that is an initializer nobody reads, or a name nothing defines.
        if (m_initializer_index.count(decl.name) != 0) {
          value(decl.name, "output '" + printable(decl.name) + "'");
        } else {
          corrupt("output '" + printable(decl.name) + "' is not produced by any node or input");
        }
      }
      const int id = m_value_of.at(decl.name);
      const Value& v = val(id);
      const std::string what = "output '" + printable(decl.name) + "'";
      const std::int32_t computed_type =
          v.dtype == DType::f32 ? detail::k_type_float : detail::k_type_int64;
      if (decl.type != detail::k_type_undefined && decl.type != computed_type) {
        corrupt(what + " is declared " + detail::onnx_type_name(decl.type) +
                " but the graph computes " + detail::onnx_type_name(computed_type));
      }
      if (decl.has_shape) {
        bool ok = decl.dims.size() == v.shape.size();
        for (std::size_t i = 0; ok && i < decl.dims.size(); ++i) {
          ok = !decl.dims[i].fixed || v.shape[i].batch || decl.dims[i].value == v.shape[i].v;
        }
        if (!ok) {
          std::string declared = "[";
          for (std::size_t i = 0; i < decl.dims.size(); ++i) {
            declared += (i ? "," : "") +
                        (decl.dims[i].fixed
                             ? std::to_string(decl.dims[i].value)
                             : (decl.dims[i].param.empty() ? "?" : printable(decl.dims[i].param)));
          }
          corrupt(what + " is declared with shape " + declared + "] but the graph computes " +
                  shape_text(v.shape));
        }
      }
      m_plan.output_values.push_back(id);
      TensorInfo info{decl.name, datatype_name(v.dtype), {}};
      for (const auto& d : v.shape) {
        info.shape.push_back(d.batch ? -1 : d.v);
      }
      m_plan.outputs.push_back(std::move(info));
    }
  }

  // Drops steps whose results no output needs.
  void eliminate_dead_steps() {
    std::vector<char> needed(m_plan.values.size(), 0);
    for (const int id : m_plan.output_values) {
      needed[static_cast<std::size_t>(id)] = 1;
    }
    std::vector<Step> kept;
    for (auto it = m_plan.steps.rbegin(); it != m_plan.steps.rend(); ++it) {
      if (needed[static_cast<std::size_t>(it->out)] == 0) {
        continue;
      }
      for (const int id : it->in) {
        if (id >= 0) {
          needed[static_cast<std::size_t>(id)] = 1;
        }
      }
      kept.push_back(std::move(*it));
    }
    std::reverse(kept.begin(), kept.end());
    m_plan.steps = std::move(kept);
  }

  // Gemm/MatMul on packed weights followed by the only reader of its result, a Relu: the
  // kernel applies max(0, ·) and the Relu becomes an alias.
  void fuse_relu() {
    std::vector<int> readers(m_plan.values.size(), 0);
    for (const auto& s : m_plan.steps) {
      for (const int id : s.in) {
        if (id >= 0) {
          ++readers[static_cast<std::size_t>(id)];
        }
      }
    }
    for (const int id : m_plan.output_values) {
      readers[static_cast<std::size_t>(id)] += 1000; // never fuse away an output
    }
    std::unordered_map<int, std::size_t> step_of;
    for (std::size_t i = 0; i < m_plan.steps.size(); ++i) {
      step_of[m_plan.steps[i].out] = i;
    }
    for (auto& s : m_plan.steps) {
      if (s.op != Op::relu) {
        continue;
      }
      const auto producer = step_of.find(s.in[0]);
      if (producer == step_of.end() || readers[static_cast<std::size_t>(s.in[0])] != 1) {
        continue;
      }
      Step& gemm = m_plan.steps[producer->second];
      const bool c_pending = gemm.in.size() > 2 && gemm.in[2] >= 0 && !gemm.bias_folded;
      if (gemm.op != Op::gemm || gemm.packed < 0 || c_pending || gemm.relu) {
        continue;
      }
      gemm.relu = true;
      s.op = Op::alias;
      m_plan.values[static_cast<std::size_t>(s.out)].root = gemm.out;
    }
  }

  // Points every alias at the value that owns its buffer, after fusion turned steps into
  // aliases (steps are in topological order, so inputs are resolved first).
  void resolve_roots() {
    for (const auto& s : m_plan.steps) {
      Value& out = m_plan.values[static_cast<std::size_t>(s.out)];
      if (s.op != Op::alias) {
        out.root = s.out;
        continue;
      }
      const Value& src = m_plan.values[static_cast<std::size_t>(s.in[0])];
      out.root = src.kind == Value::Kind::computed ? src.root : -1;
    }
  }

  // Gives every computed value that owns a buffer a workspace slot, reusing the slots of values
  // no later step reads.
  void assign_slots() {
    const int never = -1;
    const int forever = INT_MAX;
    auto root_of = [&](int id) { return m_plan.values[static_cast<std::size_t>(id)].root; };
    std::vector<int> last_use(m_plan.values.size(), never);
    for (std::size_t i = 0; i < m_plan.steps.size(); ++i) {
      for (const int id : m_plan.steps[i].in) {
        if (id >= 0 && root_of(id) >= 0) {
          last_use[static_cast<std::size_t>(root_of(id))] = static_cast<int>(i);
        }
      }
    }
    for (const int id : m_plan.output_values) {
      if (root_of(id) >= 0) {
        last_use[static_cast<std::size_t>(root_of(id))] = forever;
      }
    }
    std::vector<int> free_f32;
    std::vector<int> free_i64;
    for (std::size_t i = 0; i < m_plan.steps.size(); ++i) {
      const Step& s = m_plan.steps[i];
      Value& out = m_plan.values[static_cast<std::size_t>(s.out)];
      if (s.op != Op::alias) {
        auto& pool = out.dtype == DType::f32 ? free_f32 : free_i64;
        if (!pool.empty()) {
          out.slot = pool.back();
          pool.pop_back();
        } else {
          out.slot = out.dtype == DType::f32 ? m_plan.f32_slots++ : m_plan.i64_slots++;
        }
      }
      // Release the buffers whose last reader is this step (and results nobody reads).
      std::set<int> roots;
      for (const int id : s.in) {
        if (id >= 0 && root_of(id) >= 0 &&
            last_use[static_cast<std::size_t>(root_of(id))] == static_cast<int>(i)) {
          roots.insert(root_of(id));
        }
      }
      if (s.op != Op::alias && last_use[static_cast<std::size_t>(s.out)] == never) {
        roots.insert(s.out);
      }
      for (const int r : roots) {
        const Value& rv = m_plan.values[static_cast<std::size_t>(r)];
        (rv.dtype == DType::f32 ? free_f32 : free_i64).push_back(rv.slot);
      }
    }
  }

  Plan& m_plan;
  ModelDef& m_def;
  std::set<std::string> m_defined;
  std::unordered_map<std::string, std::size_t> m_producer;
  std::unordered_map<std::string, std::size_t> m_initializer_index;
  std::unordered_map<std::string, int> m_value_of;
};

} // namespace

void build_plan(Plan& plan, ModelDef& def) {
  Planner(plan, def).build();
}

} // namespace mlctl::onnx::detail
