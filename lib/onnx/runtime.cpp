#include "onnx/runtime.hpp"

#include "onnx/plan.hpp"
#include "onnx/reader.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <mutex>

namespace mlctl::onnx {

namespace {

using detail::DType;
using detail::k_max_batch;
using detail::k_max_pooled_bytes;
using detail::k_max_pooled_workspaces;
using detail::Op;
using detail::Plan;
using detail::printable;
using detail::product;
using detail::shape_text;
using detail::Step;
using detail::Value;
using detail::Workspace;

class WorkspaceLease {
public:
  explicit WorkspaceLease(const Plan& plan) : m_plan(plan) {
    {
      const std::lock_guard lock(plan.pool_mutex);
      if (!plan.pool.empty()) {
        m_ws = std::move(plan.pool.back());
        plan.pool.pop_back();
      }
    }
    if (!m_ws) {
      m_ws = std::make_unique<Workspace>();
    }
  }
  ~WorkspaceLease() {
    if (m_ws->bytes > k_max_pooled_bytes) {
      return;
    }
    const std::lock_guard lock(m_plan.pool_mutex);
    if (m_plan.pool.size() < k_max_pooled_workspaces) {
      m_plan.pool.push_back(std::move(m_ws));
    }
  }
  WorkspaceLease(const WorkspaceLease&) = delete;
  WorkspaceLease& operator=(const WorkspaceLease&) = delete;
  Workspace& operator*() { return *m_ws; }

private:
  const Plan& m_plan;
  std::unique_ptr<Workspace> m_ws;
};

std::string info_shape_text(const std::vector<std::int64_t>& shape) {
  return shape_text(std::span<const std::int64_t>(shape));
}

} // namespace

Model::Model(std::shared_ptr<const Plan> plan) : m_plan(std::move(plan)) {}
Model::~Model() = default;

Model Model::load(std::string_view bytes, std::string_view name) {
  auto def = detail::read_model(bytes, name);
  auto plan = std::make_shared<Plan>();
  plan->name = std::string(name);
  plan->metadata.ir_version = def.ir_version;
  plan->metadata.opset = def.opset;
  plan->metadata.producer_name = def.producer_name;
  plan->metadata.producer_version = def.producer_version;
  plan->metadata.graph_name = def.graph_name;
  plan->metadata.doc_string = def.doc_string;
  plan->metadata.properties = def.metadata;
  detail::build_plan(*plan, def);
  return Model(std::move(plan));
}

Model Model::load_file(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > detail::k_max_model_bytes) {
    throw Error(ErrorKind::corrupt, name + ": file is " + std::to_string(size) +
                                        " bytes, over the 2 GiB limit of ONNX files");
  }
  const std::string bytes = util::read_file(path);
  return load(bytes, name);
}

const std::string& Model::name() const {
  return m_plan->name;
}
const ModelMetadata& Model::metadata() const {
  return m_plan->metadata;
}
const std::vector<TensorInfo>& Model::inputs() const {
  return m_plan->inputs;
}
const std::vector<TensorInfo>& Model::outputs() const {
  return m_plan->outputs;
}
std::size_t Model::step_count() const {
  return m_plan->steps.size();
}

std::vector<Tensor> Model::run(const std::vector<Tensor>& inputs) const {
  const Plan& plan = *m_plan;
  const std::size_t ninputs = plan.inputs.size();
  std::vector<const Tensor*> fed(ninputs, nullptr);
  auto fail = [&](const std::string& what) {
    throw Error(ErrorKind::invalid_input, plan.name + ": " + what);
  };
  for (const auto& t : inputs) {
    std::size_t index = ninputs;
    if (t.name.empty() && ninputs == 1 && inputs.size() == 1) {
      index = 0;
    } else {
      for (std::size_t i = 0; i < ninputs; ++i) {
        if (plan.inputs[i].name == t.name) {
          index = i;
          break;
        }
      }
    }
    if (index == ninputs) {
      std::string names;
      for (const auto& info : plan.inputs) {
        names += (names.empty() ? "" : ", ") + info.name;
      }
      fail("unknown input '" + printable(t.name) + "' (the model's inputs: " + names + ")");
    }
    if (fed[index] != nullptr) {
      fail("input '" + plan.inputs[index].name + "' is given twice");
    }
    fed[index] = &t;
  }
  std::int64_t batch = -1;
  for (std::size_t i = 0; i < ninputs; ++i) {
    const TensorInfo& info = plan.inputs[i];
    const std::string what = "input '" + info.name + "'";
    if (fed[i] == nullptr) {
      fail(what + " is missing");
    }
    const Tensor& t = *fed[i];
    if (t.datatype != info.datatype) {
      fail(what + ": expected datatype " + info.datatype + ", got " + printable(t.datatype));
    }
    const Value& v = plan.values[static_cast<std::size_t>(plan.input_values[i])];
    bool ok = t.shape.size() == v.shape.size();
    for (std::size_t d = 0; ok && d < v.shape.size(); ++d) {
      const std::int64_t given = t.shape[d];
      if (!v.shape[d].batch) {
        ok = given == v.shape[d].v;
        continue;
      }
      ok = given > 0 && given % v.shape[d].v == 0;
      if (ok) {
        const std::int64_t n = given / v.shape[d].v;
        if (batch >= 0 && n != batch) {
          fail(what + ": batch size " + std::to_string(n) + " differs from the other inputs' " +
               std::to_string(batch));
        }
        batch = n;
      }
    }
    if (!ok) {
      fail(what + ": expected shape " + info_shape_text(info.shape) + ", got " +
           info_shape_text(t.shape));
    }
    const std::size_t count = static_cast<std::size_t>(product(t.shape));
    const std::size_t have = t.datatype == "FP32" ? t.f32.size() : t.i64.size();
    if (have != count) {
      fail(what + ": shape " + info_shape_text(t.shape) + " needs " + std::to_string(count) +
           " values, got " + std::to_string(have));
    }
  }
  if (batch < 0) {
    batch = 1; // no batch dimension anywhere
  }
  if (batch > k_max_batch) {
    fail("batch size " + std::to_string(batch) + " is too large");
  }

  WorkspaceLease lease(plan);
  Workspace& ws = *lease;
  if (ws.batch != batch) {
    detail::prepare(plan, ws, batch);
  }
  for (std::size_t i = 0; i < ninputs; ++i) {
    const Tensor& t = *fed[i];
    ws.ptr[static_cast<std::size_t>(plan.input_values[i])] =
        t.datatype == "FP32" ? static_cast<const void*>(t.f32.data())
                             : static_cast<const void*>(t.i64.data());
  }
  for (const Step& s : plan.steps) {
    void* out = nullptr;
    const Value& v = plan.values[static_cast<std::size_t>(s.out)];
    if (s.op != Op::alias) {
      out = v.dtype == DType::f32
                ? static_cast<void*>(ws.f32[static_cast<std::size_t>(v.slot)].data())
                : static_cast<void*>(ws.i64[static_cast<std::size_t>(v.slot)].data());
    }
    detail::execute(plan, s, ws, out);
  }

  std::vector<Tensor> outputs;
  outputs.reserve(plan.outputs.size());
  for (std::size_t i = 0; i < plan.outputs.size(); ++i) {
    const int id = plan.output_values[i];
    const Value& v = plan.values[static_cast<std::size_t>(id)];
    Tensor t;
    t.name = plan.outputs[i].name;
    t.datatype = plan.outputs[i].datatype;
    t.shape = ws.shapes[static_cast<std::size_t>(id)];
    const auto count = static_cast<std::size_t>(product(t.shape));
    if (v.dtype == DType::f32) {
      const auto* p = static_cast<const float*>(ws.ptr[static_cast<std::size_t>(id)]);
      t.f32.assign(p, p + count);
    } else {
      const auto* p = static_cast<const std::int64_t*>(ws.ptr[static_cast<std::size_t>(id)]);
      t.i64.assign(p, p + count);
    }
    outputs.push_back(std::move(t));
  }
  // Inputs belong to the caller: keep no pointer to them past the call.
  for (const int id : plan.input_values) {
    ws.ptr[static_cast<std::size_t>(id)] = nullptr;
  }
  return outputs;
}

} // namespace mlctl::onnx
