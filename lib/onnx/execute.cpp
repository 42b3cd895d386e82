// The runtime's step interpreter: element-wise broadcasting, Gemm/MatMul on the packed
// kernel, Softmax, Cast, ArgMax; and the sizing of a workspace for a batch.

#include "onnx/kernels.hpp"
#include "onnx/plan.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <limits>

namespace mlctl::onnx::detail {

namespace {

template <class T> const T* in_ptr(const Workspace& ws, int v) {
  return static_cast<const T*>(ws.ptr[static_cast<std::size_t>(v)]);
}

const std::vector<std::int64_t>& shape_of(const Workspace& ws, int v) {
  return ws.shapes[static_cast<std::size_t>(v)];
}

template <class F>
void broadcast_binary(const float* a, std::span<const std::int64_t> as, const float* b,
                      std::span<const std::int64_t> bs, float* y, std::span<const std::int64_t> ys,
                      F f) {
  const std::int64_t ny = product(ys);
  const std::int64_t na = product(as);
  const std::int64_t nb = product(bs);
  if (na == ny && nb == ny) {
    for (std::int64_t i = 0; i < ny; ++i) {
      y[i] = f(a[i], b[i]);
    }
    return;
  }
  if (na == ny && nb == 1) {
    const float bv = b[0];
    for (std::int64_t i = 0; i < ny; ++i) {
      y[i] = f(a[i], bv);
    }
    return;
  }
  if (nb == ny && na == 1) {
    const float av = a[0];
    for (std::int64_t i = 0; i < ny; ++i) {
      y[i] = f(av, b[i]);
    }
    return;
  }
  // A bias-like operand: its shape (without leading 1s) equals the trailing dims of y.
  auto is_suffix = [&](std::span<const std::int64_t> s) {
    std::size_t lead = 0;
    while (lead < s.size() && s[lead] == 1) {
      ++lead;
    }
    const auto tail = s.subspan(lead);
    return tail.size() <= ys.size() &&
           std::equal(tail.begin(), tail.end(),
                      ys.end() - static_cast<std::ptrdiff_t>(tail.size()));
  };
  if (na == ny && nb > 0 && is_suffix(bs)) {
    for (std::int64_t o = 0; o < ny; o += nb) {
      for (std::int64_t i = 0; i < nb; ++i) {
        y[o + i] = f(a[o + i], b[i]);
      }
    }
    return;
  }
  if (nb == ny && na > 0 && is_suffix(as)) {
    for (std::int64_t o = 0; o < ny; o += na) {
      for (std::int64_t i = 0; i < na; ++i) {
        y[o + i] = f(a[i], b[o + i]);
      }
    }
    return;
  }
  // General numpy broadcasting: strides of 0 along broadcast dimensions.
  const std::size_t rank = ys.size();
  std::vector<std::int64_t> sa(rank, 0);
  std::vector<std::int64_t> sb(rank, 0);
  auto strides = [&](std::span<const std::int64_t> s, std::vector<std::int64_t>& out) {
    std::int64_t stride = 1;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const std::size_t src = s.size() - 1 - i;
      const std::size_t dst = rank - 1 - i;
      out[dst] = s[src] == 1 ? 0 : stride;
      stride *= s[src];
    }
  };
  strides(as, sa);
  strides(bs, sb);
  if (rank == 0) {
    y[0] = f(a[0], b[0]);
    return;
  }
  std::vector<std::int64_t> index(rank, 0);
  const std::int64_t inner = ys[rank - 1];
  std::int64_t oa = 0;
  std::int64_t ob = 0;
  for (std::int64_t done = 0; done < ny; done += inner) {
    for (std::int64_t i = 0; i < inner; ++i) {
      y[done + i] = f(a[oa + i * sa[rank - 1]], b[ob + i * sb[rank - 1]]);
    }
    // Advance the odometer over the outer dimensions.
    for (std::size_t d = rank - 1; d-- > 0;) {
      ++index[d];
      oa += sa[d];
      ob += sb[d];
      if (index[d] < ys[d]) {
        break;
      }
      oa -= sa[d] * index[d];
      ob -= sb[d] * index[d];
      index[d] = 0;
    }
  }
}

void exec_gemm(const Plan& plan, const Step& s, Workspace& ws, float* y) {
  const auto& as = shape_of(ws, s.in[0]);
  const float* a = in_ptr<float>(ws, s.in[0]);
  std::int64_t m = 0;
  std::int64_t k = 0;
  if (s.matmul) {
    k = as.back();
    m = as.size() == 1 ? 1 : product(as) / k;
  } else {
    m = s.trans_a ? as[1] : as[0];
    k = s.trans_a ? as[0] : as[1];
    if (s.trans_a) {
      ws.scratch_a.resize(static_cast<std::size_t>(m * k));
      for (std::int64_t i = 0; i < m; ++i) {
        for (std::int64_t kk = 0; kk < k; ++kk) {
          ws.scratch_a[static_cast<std::size_t>(i * k + kk)] = a[kk * m + i];
        }
      }
      a = ws.scratch_a.data();
    }
  }
  const float* packed = nullptr;
  const float* bias = nullptr;
  std::int64_t n = 0;
  bool skip_zeros = false;
  if (s.packed >= 0) {
    const auto& p = plan.packed[static_cast<std::size_t>(s.packed)];
    packed = p.data.data();
    bias = p.bias.empty() ? nullptr : p.bias.data();
    n = p.n;
    skip_zeros = m == 1 && p.finite;
  } else {
    const auto& bs = shape_of(ws, s.in[1]);
    const bool transposed = !s.matmul && s.trans_b;
    n = bs.size() == 1 ? 1 : (transposed ? bs[0] : bs[1]);
    kernels::pack(in_ptr<float>(ws, s.in[1]), k, n, transposed, s.matmul ? 1.0f : s.alpha,
                  ws.scratch_b);
    packed = ws.scratch_b.data();
  }
  if (!skip_zeros || !kernels::gemv_skip_zeros(a, packed, k, n, bias, s.relu, y)) {
    kernels::gemm(a, m, k, packed, k, n, bias, s.relu, y, n);
  }
  if (s.in.size() > 2 && s.in[2] >= 0 && !s.bias_folded) {
    // Gemm's C, unidirectionally broadcast to [M, N].
    const auto& cs = shape_of(ws, s.in[2]);
    const float* c = in_ptr<float>(ws, s.in[2]);
    const std::int64_t cr = cs.size() == 2 ? cs[0] : 1;
    const std::int64_t cc = cs.empty() ? 1 : cs.back();
    for (std::int64_t i = 0; i < m; ++i) {
      const float* crow = c + (cr == 1 ? 0 : i * cc);
      for (std::int64_t j = 0; j < n; ++j) {
        y[i * n + j] += s.beta * crow[cc == 1 ? 0 : j];
      }
    }
  }
}

void exec_argmax(const Plan& plan, const Step& s, Workspace& ws, std::int64_t* y) {
  const auto& xs = shape_of(ws, s.in[0]);
  const auto axis = static_cast<std::size_t>(s.axis);
  const std::int64_t outer = product(std::span(xs).subspan(0, axis));
  const std::int64_t len = xs[axis];
  const std::int64_t inner = product(std::span(xs).subspan(axis + 1));
  auto run = [&](const auto* x) {
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::int64_t i = 0; i < inner; ++i) {
        const auto* base = x + o * len * inner + i;
        std::int64_t best = 0;
        for (std::int64_t j = 1; j < len; ++j) {
          const auto v = base[j * inner];
          const auto b = base[best * inner];
          if (s.select_last ? v >= b : v > b) {
            best = j;
          }
        }
        y[o * inner + i] = best;
      }
    }
  };
  if (plan.values[static_cast<std::size_t>(s.in[0])].dtype == DType::f32) {
    run(in_ptr<float>(ws, s.in[0]));
  } else {
    run(in_ptr<std::int64_t>(ws, s.in[0]));
  }
}

std::int64_t float_to_int64(float v) {
  // Truncation toward zero like numpy's astype; NaN and out-of-range values (undefined in C++)
  // give INT64_MIN, the x86 "integer indefinite" value other runtimes produce.
  constexpr float k_limit = 9.2233720368547758e18f; // 2^63
  if (!(v > -k_limit && v < k_limit)) {
    return std::numeric_limits<std::int64_t>::min();
  }
  return static_cast<std::int64_t>(v);
}

} // namespace

void execute(const Plan& plan, const Step& s, Workspace& ws, void* out) {
  const auto out_index = static_cast<std::size_t>(s.out);
  if (s.op == Op::alias) {
    ws.ptr[out_index] = ws.ptr[static_cast<std::size_t>(s.in[0])];
    return;
  }
  ws.ptr[out_index] = out;
  const auto count = static_cast<std::size_t>(product(ws.shapes[out_index]));
  auto* yf = static_cast<float*>(out);
  switch (s.op) {
  case Op::gemm:
    exec_gemm(plan, s, ws, yf);
    break;
  case Op::add:
  case Op::sub:
  case Op::mul:
  case Op::div: {
    const float* a = in_ptr<float>(ws, s.in[0]);
    const float* b = in_ptr<float>(ws, s.in[1]);
    const auto& as = shape_of(ws, s.in[0]);
    const auto& bs = shape_of(ws, s.in[1]);
    const auto& ys = ws.shapes[out_index];
    switch (s.op) {
    case Op::add:
      broadcast_binary(a, as, b, bs, yf, ys, [](float x, float z) { return x + z; });
      break;
    case Op::sub:
      broadcast_binary(a, as, b, bs, yf, ys, [](float x, float z) { return x - z; });
      break;
    case Op::mul:
      broadcast_binary(a, as, b, bs, yf, ys, [](float x, float z) { return x * z; });
      break;
    default:
      broadcast_binary(a, as, b, bs, yf, ys, [](float x, float z) { return x / z; });
      break;
    }
    break;
  }
  case Op::relu:
    kernels::relu(in_ptr<float>(ws, s.in[0]), yf, count);
    break;
  case Op::sigmoid:
    kernels::sigmoid(in_ptr<float>(ws, s.in[0]), yf, count);
    break;
  case Op::tanh:
    kernels::tanh(in_ptr<float>(ws, s.in[0]), yf, count);
    break;
  case Op::softmax:
  case Op::log_softmax: {
    const auto& xs = shape_of(ws, s.in[0]);
    const auto axis = static_cast<std::size_t>(s.axis);
    const std::int64_t outer = product(std::span(xs).subspan(0, axis));
    const std::int64_t len = s.legacy_softmax ? product(std::span(xs).subspan(axis)) : xs[axis];
    const std::int64_t inner = s.legacy_softmax ? 1 : product(std::span(xs).subspan(axis + 1));
    kernels::softmax(in_ptr<float>(ws, s.in[0]), yf, outer, len, inner, s.op == Op::log_softmax);
    break;
  }
  case Op::cast: {
    const bool from_f32 = plan.values[static_cast<std::size_t>(s.in[0])].dtype == DType::f32;
    if (from_f32 && s.to == DType::i64) {
      const float* x = in_ptr<float>(ws, s.in[0]);
      auto* y = static_cast<std::int64_t*>(out);
      for (std::size_t i = 0; i < count; ++i) {
        y[i] = float_to_int64(x[i]);
      }
    } else if (!from_f32 && s.to == DType::f32) {
      const std::int64_t* x = in_ptr<std::int64_t>(ws, s.in[0]);
      for (std::size_t i = 0; i < count; ++i) {
        yf[i] = static_cast<float>(x[i]);
      }
    }
    break;
  }
  case Op::argmax:
    exec_argmax(plan, s, ws, static_cast<std::int64_t*>(out));
    break;
  case Op::alias:
    break;
  }
}

// Sizes the workspace for `batch`: concrete shapes, slot buffers, constant pointers.
void prepare(const Plan& plan, Workspace& ws, std::int64_t batch) {
  const std::size_t nvalues = plan.values.size();
  ws.shapes.resize(nvalues);
  std::vector<std::uint64_t> f32_capacity(static_cast<std::size_t>(plan.f32_slots), 0);
  std::vector<std::uint64_t> i64_capacity(static_cast<std::size_t>(plan.i64_slots), 0);
  std::uint64_t total_bytes = 0;
  for (std::size_t i = 0; i < nvalues; ++i) {
    const Value& v = plan.values[i];
    auto& shape = ws.shapes[i];
    shape.resize(v.shape.size());
    std::uint64_t count = 1;
    for (std::size_t d = 0; d < v.shape.size(); ++d) {
      shape[d] = v.shape[d].v * (v.shape[d].batch ? batch : 1);
      count *= static_cast<std::uint64_t>(shape[d]);
    }
    if (v.slot >= 0) {
      auto& cap =
          (v.dtype == DType::f32 ? f32_capacity : i64_capacity)[static_cast<std::size_t>(v.slot)];
      cap = std::max(cap, count);
    }
  }
  for (const auto c : f32_capacity) {
    total_bytes += c * sizeof(float);
  }
  for (const auto c : i64_capacity) {
    total_bytes += c * sizeof(std::int64_t);
  }
  if (total_bytes > k_max_scratch_bytes) {
    ws.batch = -1;
    throw Error(ErrorKind::invalid_input,
                plan.name + ": a batch of " + std::to_string(batch) +
                    " needs more than 4 GiB of scratch memory; send smaller batches");
  }
  ws.f32.resize(f32_capacity.size());
  for (std::size_t i = 0; i < f32_capacity.size(); ++i) {
    ws.f32[i].resize(f32_capacity[i]);
  }
  ws.i64.resize(i64_capacity.size());
  for (std::size_t i = 0; i < i64_capacity.size(); ++i) {
    ws.i64[i].resize(i64_capacity[i]);
  }
  ws.bytes = total_bytes;
  ws.ptr.assign(nvalues, nullptr);
  for (std::size_t i = 0; i < nvalues; ++i) {
    const Value& v = plan.values[i];
    if (v.kind == Value::Kind::constant) {
      const auto& c = plan.constants[static_cast<std::size_t>(v.index)];
      ws.ptr[i] = v.dtype == DType::f32 ? static_cast<const void*>(c.f32.data())
                                        : static_cast<const void*>(c.i64.data());
    }
  }
  ws.batch = batch;
}

} // namespace mlctl::onnx::detail
