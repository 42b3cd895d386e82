// The application routes (/api/v1/applications...) and the inference gateway: the Open
// Inference Protocol (KServe V2, REST) under /v2 and the simple form
// POST /api/v1/applications/{app}/predict. The inference routes are the hot path: the usual
// bodies of both forms are read by hand, the others with simdjson on-demand, answers are
// written by hand, and nothing touches SQLite unless the application is unknown.

#include "api/app_routes.hpp"
#include "api/errors.hpp"
#include "api/names.hpp"
#include "server/applications.hpp"
#include "server/gateway.hpp"
#include "server/http_internal.hpp"
#include "util/build_info.hpp"
#include "util/json_text.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <simdjson.h>
#include <utility>

namespace mlctl::server::detail {

namespace {

using httplib::Request;
using httplib::Response;
namespace od = simdjson::ondemand;
namespace pattern = api::routes::pattern;

// ---- JSON writing (the answers of the hot path) ----------------------------------------

void put_float(std::string& out, float v) {
  char buf[32];
  if (!std::isfinite(v)) {
    out += "null"; // JSON has no NaN/inf
    return;
  }
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? end : buf);
}

void put_int(std::string& out, std::int64_t v) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void send_raw_json(Response& res, int status, std::string body) {
  res.status = status;
  res.set_content(std::move(body), "application/json");
}

std::string trace_id_of(const Response& res) {
  const auto tp = res.get_header_value("traceparent");
  return tp.size() >= 35 ? tp.substr(3, 32) : std::string();
}

// ---- Parsing ---------------------------------------------------------------------------

struct BadRequest {
  int status;
  std::string message;
};

[[noreturn]] void refuse(std::string message, int status = 400) {
  throw BadRequest{status, std::move(message)};
}

// A body in a thread-local buffer with simdjson's padding, parsed by a thread-local parser.
od::document& parse_body(const std::string& body) {
  thread_local std::string buffer;
  thread_local od::parser parser;
  thread_local od::document doc;
  buffer.assign(body);
  buffer.resize(body.size() + simdjson::SIMDJSON_PADDING);
  if (parser.iterate(buffer.data(), body.size(), buffer.size()).get(doc) != simdjson::SUCCESS) {
    refuse("request body: not valid JSON");
  }
  return doc;
}

// simdjson on-demand stops reading at the end of the object it was asked for: anything after
// it is still there (its location is OUT_OF_BOUNDS at the end of the text).
void refuse_text_after(od::document& doc) {
  const char* at = nullptr;
  if (doc.current_location().get(at) != simdjson::OUT_OF_BOUNDS) {
    refuse("request body: not valid JSON (text after its end)");
  }
}

// Flattens a (nested) array of numbers into `out` row-major and returns its shape; refuses
// ragged arrays, non-numbers, NaN/inf (JSON cannot carry them; numbers out of range).
void flatten(od::value value, std::vector<double>& out, std::vector<std::int64_t>& shape,
             std::size_t depth, std::size_t& leaf_depth, const std::string& what,
             std::size_t limit) {
  od::json_type type;
  if (value.type().get(type) != simdjson::SUCCESS) {
    refuse(what + ": not valid JSON");
  }
  if (type == od::json_type::number) {
    if (leaf_depth == SIZE_MAX) {
      leaf_depth = depth;
    } else if (leaf_depth != depth) {
      refuse(what + ": ragged array (numbers and lists mixed at one level)");
    }
    double d = 0;
    if (value.get_double().get(d) != simdjson::SUCCESS || !std::isfinite(d)) {
      refuse(what + ": a value is not a finite number");
    }
    if (out.size() >= limit) {
      refuse(what + ": more than " + std::to_string(limit) + " values");
    }
    out.push_back(d);
    return;
  }
  if (type != od::json_type::array) {
    refuse(what + ": expected numbers, got " +
           (type == od::json_type::string    ? std::string("a string")
            : type == od::json_type::null    ? std::string("null")
            : type == od::json_type::boolean ? std::string("a boolean")
                                             : std::string("an object")));
  }
  if (depth >= 8) {
    refuse(what + ": nested too deeply");
  }
  od::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    refuse(what + ": not valid JSON");
  }
  std::int64_t n = 0;
  for (auto element : array) {
    od::value v;
    if (element.get(v) != simdjson::SUCCESS) {
      refuse(what + ": not valid JSON");
    }
    flatten(v, out, shape, depth + 1, leaf_depth, what, limit);
    ++n;
  }
  if (n == 0 && leaf_depth == SIZE_MAX) {
    leaf_depth = depth + 1;
  }
  if (shape.size() <= depth) {
    shape.resize(depth + 1, -1);
  }
  if (shape[depth] == -1) {
    shape[depth] = n;
  } else if (shape[depth] != n) {
    refuse(what + ": ragged array (rows of different lengths)");
  }
}

// The common case of a request, one flat list of finite numbers, read in one pass: appends
// them to `out` and returns true, or returns false at the first thing `flatten` would treat
// differently (a nested list, a non-number, an empty list, more than `limit` values), leaving
// the document half read: the caller then decodes the body again with `flatten`, which gives
// the answer (and the message) for every other shape.
bool read_flat(od::value value, std::vector<double>& out, std::size_t limit) {
  const auto start = out.size();
  od::array array;
  // Short numbers (pixels as 0.0039 or 255) are read from the text in less than half of
  // simdjson's time per element; simdjson then only skips the list. parse_body's buffer ends
  // in NULs.
  if (util::read_short_numbers(value.raw_json_token().data(), out, limit) != nullptr) {
    std::string_view skipped;
    return value.get_array().get(array) == simdjson::SUCCESS &&
           array.raw_json().get(skipped) == simdjson::SUCCESS;
  }
  out.resize(start);
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    return false;
  }
  for (auto element : array) {
    od::value v;
    if (element.get(v) != simdjson::SUCCESS || out.size() >= limit) {
      return false;
    }
    // A zero written 0 or 0.0 (most of an MNIST digit's pixels) needs no number parsing: the
    // token ends where the next structural character (`,` or `]`) starts.
    double d = 0;
    const std::string_view token = v.raw_json_token();
    if (token != "0" && token != "0.0" &&
        (v.get_double().get(d) != simdjson::SUCCESS || !std::isfinite(d))) {
      return false;
    }
    out.push_back(d);
  }
  return out.size() > start;
}

// Thrown by a decoder in its fast mode when the body needs the general decoder.
struct NotFlat {};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s;
  for (const auto d : shape) {
    s += (s.empty() ? "" : "×") + std::to_string(d);
  }
  return s.empty() ? "a scalar" : s;
}

// ---- The simple form -------------------------------------------------------------------

// The smallest and the largest of `values` and 0, over 4 lanes: one running minimum and
// maximum waits on the previous comparison at every value, independent lanes side by side do
// not (an image's check and conversion fell from 5.4% to 2.8% of the server's user time in a
// profile).
std::pair<double, double> min_max_with_zero(const std::vector<double>& values) {
  constexpr std::size_t k_lanes = 4;
  std::array<double, k_lanes> low{};
  std::array<double, k_lanes> high{};
  const std::size_t n = values.size();
  std::size_t i = 0;
  for (; i + k_lanes <= n; i += k_lanes) {
    for (std::size_t j = 0; j < k_lanes; ++j) {
      low[j] = std::min(low[j], values[i + j]);
      high[j] = std::max(high[j], values[i + j]);
    }
  }
  for (; i < n; ++i) {
    low[0] = std::min(low[0], values[i]);
    high[0] = std::max(high[0], values[i]);
  }
  return {*std::min_element(low.begin(), low.end()), *std::max_element(high.begin(), high.end())};
}

// Forgets what a decoder in fast mode put in `call` before it gave up.
void reset_inputs(InferCall& call) {
  call.inputs.clear();
  call.images.clear();
  call.batch = 0;
}

// The simple form's common body, `{"images": [[n, ...], ...]}` with flat images of `pixels`
// short numbers each (util::read_short_numbers), read from the text without simdjson: calls
// `add` after reading each image into `values` (`add` counts them in `batch`). Returns false,
// perhaps after some calls, at anything else (other spacing is fine); the caller then decodes
// the body with simdjson, which gives the answer (and the message) for every other body.
template <class Add>
bool read_images_text(const std::string& body, std::size_t pixels, std::size_t max_batch,
                      const std::size_t& batch, std::vector<double>& values, const Add& add) {
  // c_str(): the readers below stop at the NUL that ends it.
  const char* p = util::skip_json_space(body.c_str());
  if (*p != '{') {
    return false;
  }
  p = util::skip_json_space(p + 1);
  if (std::strncmp(p, "\"images\"", 8) != 0) {
    return false;
  }
  p = util::skip_json_space(p + 8);
  if (*p != ':') {
    return false;
  }
  p = util::skip_json_space(p + 1);
  if (*p != '[') {
    return false;
  }
  do {
    values.clear();
    p = util::read_short_numbers(util::skip_json_space(p + 1), values, pixels);
    if (p == nullptr || values.size() != pixels || batch == max_batch) {
      return false;
    }
    add();
    p = util::skip_json_space(p);
  } while (*p == ',');
  if (*p != ']') {
    return false;
  }
  p = util::skip_json_space(p + 1);
  if (*p != '}') {
    return false;
  }
  return util::skip_json_space(p + 1) == body.c_str() + body.size();
}

// Reads the images of a simple-form body with simdjson into `values`, one at a time, and calls
// `add` after each (`add` counts them in `batch`). In fast mode flat lists of numbers only
// (NotFlat otherwise).
template <class Add>
void decode_images_json(const std::string& body, const LoadedModel& model, std::size_t max_batch,
                        bool fast, const std::size_t& batch, std::vector<double>& values,
                        const Add& add) {
  auto& doc = parse_body(body);
  od::object obj;
  if (const auto err = doc.get_object().get(obj); err != simdjson::SUCCESS) {
    refuse(err == simdjson::INCORRECT_TYPE
               ? "request body: expected a JSON object {\"images\": [...]}"
               : "request body: not valid JSON");
  }
  bool seen = false;
  std::vector<std::int64_t> shape;
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
      refuse("request body: not valid JSON");
    }
    if (key != "images") {
      refuse("request body: unknown field '" + std::string(key.substr(0, 40)) +
             "' (expected {\"images\": [...]})");
    }
    seen = true;
    od::array images;
    if (field.value().get_array().get(images) != simdjson::SUCCESS) {
      refuse("images: expected a list of images");
    }
    for (auto item : images) {
      od::value image;
      if (item.get(image) != simdjson::SUCCESS) {
        refuse("request body: not valid JSON");
      }
      if (batch >= max_batch) {
        refuse("images: a batch of more than " + std::to_string(max_batch) +
               " images is over the server's limit (mlctl serve --max-batch)");
      }
      values.clear();
      if (fast) {
        if (!read_flat(image, values, model.pixels) || values.size() != model.pixels) {
          throw NotFlat{};
        }
      } else {
        const auto what = "images[" + std::to_string(batch) + "]";
        shape.clear();
        std::size_t leaf_depth = SIZE_MAX;
        flatten(image, values, shape, 0, leaf_depth, what, model.pixels);
      }
      if (!fast && (values.size() != model.pixels || shape.empty() || shape.size() > 3)) {
        const auto what = "images[" + std::to_string(batch) + "]";
        std::string expected = std::to_string(model.pixels) + " values (flat";
        auto rows =
            static_cast<std::int64_t>(std::lround(std::sqrt(static_cast<double>(model.pixels))));
        auto cols = rows;
        if (model.image_dims.size() >= 2) {
          rows = model.image_dims[model.image_dims.size() - 2];
          cols = model.image_dims.back();
        }
        if (static_cast<std::size_t>(rows * cols) == model.pixels) {
          expected += ", or " + std::to_string(rows) + "×" + std::to_string(cols) + " nested";
        }
        refuse(what + ": expected " + expected + "), got " + shape_text(shape));
      }
      add();
    }
  }
  refuse_text_after(doc);
  if (!seen) {
    refuse("request body: expected {\"images\": [...]}");
  }
}

// Decodes `{"images": [...]}` for `model` into `call`: each image a flat list of `pixels`
// values or nested (28×28), floats in [0, 1] or integers 0-255.
void decode_images(const std::string& body, const LoadedModel& model, std::size_t max_batch,
                   bool keep_images, InferCall& call, bool fast) {
  if (model.image_input.empty()) {
    refuse("this application's model does not take images (inputs: " +
           model.model.inputs().at(0).name +
           "); use the Open Inference Protocol endpoint /v2/models/{name}/infer");
  }
  onnx::Tensor tensor;
  tensor.name = model.image_input;
  tensor.datatype = "FP32";
  tensor.f32.reserve(model.pixels);
  if (keep_images) {
    call.images.reserve(model.pixels);
  }
  thread_local std::vector<double> values; // keeps its capacity: no allocation per request
  std::size_t batch = 0;
  // Checks images[batch], read into `values`, and appends it to the tensor (and the images
  // kept for the inference sinks).
  const auto add_image = [&] {
    const auto [min, max] = min_max_with_zero(values);
    // Integers 0-255 when any value is over 1; floats in [0, 1] otherwise.
    const bool bytes = max > 1.0;
    if (bytes) {
      for (const double v : values) {
        if (v < 0 || v > 255 || v != std::floor(v)) {
          refuse("images[" + std::to_string(batch) +
                 "]: values must be floats in [0, 1] or integers 0-255, got " + std::to_string(v));
        }
      }
    } else if (min < 0) {
      refuse("images[" + std::to_string(batch) +
             "]: values must be floats in [0, 1] or integers 0-255, got a negative value");
    }
    const double to_unit = bytes ? 1.0 / 255.0 : 1.0;
    const double to_model = to_unit * 255.0 * model.input_scale;
    const auto n = values.size();
    tensor.f32.resize(tensor.f32.size() + n);
    float* to = tensor.f32.data() + tensor.f32.size() - n;
    for (std::size_t i = 0; i < n; ++i) {
      to[i] = static_cast<float>(values[i] * to_model);
    }
    if (keep_images) {
      call.images.resize(call.images.size() + n);
      float* kept = call.images.data() + call.images.size() - n;
      for (std::size_t i = 0; i < n; ++i) {
        kept[i] = static_cast<float>(values[i] * to_unit);
      }
    }
    ++batch;
  };
  if (!fast || !read_images_text(body, model.pixels, max_batch, batch, values, add_image)) {
    // What the text reader added before it gave up goes: simdjson reads the body from the start.
    tensor.f32.clear();
    call.images.clear();
    batch = 0;
    decode_images_json(body, model, max_batch, fast, batch, values, add_image);
  }
  if (batch == 0) {
    refuse("images: the batch is empty");
  }
  tensor.shape.push_back(static_cast<std::int64_t>(batch));
  tensor.shape.insert(tensor.shape.end(), model.image_dims.begin(), model.image_dims.end());
  call.batch = batch;
  call.inputs.push_back(std::move(tensor));
}

// ---- The Open Inference Protocol -------------------------------------------------------

// The header giving the size of the JSON part of a body that carries binary tensor data.
constexpr const char* k_json_header_size = "Inference-Header-Content-Length";

struct V2Output {
  std::string name;
  std::optional<bool> binary; // its parameters.binary_data, when given
};

struct V2Request {
  std::string id;
  bool has_id = false;
  std::vector<V2Output> outputs; // requested; empty = all
  bool binary_output = false;    // parameters.binary_data_output: outputs as binary by default
};

// The binary tensor data extension (Triton's, which KServe adopted): tensor data as
// little-endian bytes in the native size of the datatype, after the JSON header of the body.
static_assert(std::endian::native == std::endian::little,
              "the binary tensor data extension sends little-endian bytes: copy with a swap here");

// The size of one element of `datatype` in binary tensor data, or 0 for a datatype the
// gateway does not take.
std::size_t element_size(std::string_view datatype) {
  return datatype == "FP32" ? sizeof(float) : datatype == "INT64" ? sizeof(std::int64_t) : 0;
}

// The data of an input tensor: numbers read from JSON, or its binary tensor data.
struct InputData {
  const std::vector<double>* numbers = nullptr;
  std::string_view bytes;
};

// Checks input tensor `tensor` (its name and datatype read, `shape` and `data` beside it)
// against the model's inputs and appends it to `call`.
void add_v2_input(const LoadedModel& model, std::size_t max_batch, bool keep_images,
                  onnx::Tensor tensor, std::vector<std::int64_t> shape, InputData data,
                  InferCall& call) {
  const auto& infos = model.model.inputs();
  const auto what = "inputs[" + std::to_string(call.inputs.size()) + "]";
  const auto info = std::find_if(infos.begin(), infos.end(),
                                 [&](const auto& i) { return i.name == tensor.name; });
  if (info == infos.end()) {
    std::string names;
    for (const auto& i : infos) {
      names += (names.empty() ? "" : ", ") + i.name;
    }
    refuse(what + ": the model has no input '" + tensor.name.substr(0, 80) +
           "' (its inputs: " + names + ")");
  }
  if (tensor.datatype != info->datatype) {
    refuse("input '" + tensor.name + "': datatype " + tensor.datatype.substr(0, 20) +
           " does not match the model's " + info->datatype);
  }
  const auto size = element_size(tensor.datatype);
  if (size == 0) {
    refuse("input '" + tensor.name + "': datatype " + tensor.datatype + " is not supported");
  }
  std::size_t count = 1;
  std::size_t bytes = 0;
  for (const auto d : shape) {
    if (__builtin_mul_overflow(count, static_cast<std::size_t>(d), &count)) {
      count = SIZE_MAX;
    }
  }
  if (__builtin_mul_overflow(count, size, &bytes)) {
    refuse("input '" + tensor.name + "': shape [" + shape_text(shape) + "] is too large");
  }
  if (shape.size() != info->shape.size()) {
    refuse("input '" + tensor.name + "': shape [" + shape_text(shape) +
           "] does not match the model's [" + shape_text(info->shape) + "]");
  }
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (info->shape[i] >= 0 && shape[i] != info->shape[i]) {
      refuse("input '" + tensor.name + "': shape [" + shape_text(shape) +
             "] does not match the model's [" + shape_text(info->shape) + "]");
    }
  }
  if (data.numbers != nullptr && count != data.numbers->size()) {
    refuse("input '" + tensor.name + "': data holds " + std::to_string(data.numbers->size()) +
           " values; shape [" + shape_text(shape) + "] needs " + std::to_string(count));
  }
  if (data.numbers == nullptr && bytes != data.bytes.size()) {
    refuse("input '" + tensor.name + "': parameters.binary_data_size is " +
           std::to_string(data.bytes.size()) + "; shape [" + shape_text(shape) + "] of " +
           tensor.datatype + " needs " + std::to_string(bytes) + " bytes");
  }
  const auto batch = shape.empty() ? 0 : static_cast<std::size_t>(shape[0]);
  if (batch == 0 || count == 0) {
    refuse("input '" + tensor.name + "': the batch is empty");
  }
  if (batch > max_batch) {
    refuse("input '" + tensor.name + "': a batch of " + std::to_string(batch) +
           " is over the server's limit of " + std::to_string(max_batch) +
           " (mlctl serve --max-batch)");
  }
  if (call.batch != 0 && call.batch != batch) {
    refuse("input '" + tensor.name + "': batch " + std::to_string(batch) +
           " differs from the other inputs' " + std::to_string(call.batch));
  }
  call.batch = batch;
  if (tensor.datatype == "FP32") {
    tensor.f32.resize(count);
    if (data.numbers != nullptr) {
      for (std::size_t i = 0; i < count; ++i) {
        tensor.f32[i] = static_cast<float>((*data.numbers)[i]);
      }
    } else {
      std::memcpy(tensor.f32.data(), data.bytes.data(), data.bytes.size());
      // JSON cannot carry NaN or infinity; binary data can, and the model must not see them.
      for (std::size_t i = 0; i < count; ++i) {
        if (!std::isfinite(tensor.f32[i])) {
          refuse("input '" + tensor.name + "': binary data holds " +
                 (std::isnan(tensor.f32[i]) ? "NaN" : "infinity") + " at element " +
                 std::to_string(i));
        }
      }
    }
    if (keep_images && tensor.name == model.image_input &&
        std::fabs(model.input_scale * 255.0 - 1.0) < 1e-6) {
      call.images = tensor.f32;
    }
  } else if (data.numbers != nullptr) {
    for (const double d : *data.numbers) {
      if (d != std::floor(d)) {
        refuse("input '" + tensor.name + "': INT64 data holds a non-integer");
      }
      tensor.i64.push_back(static_cast<std::int64_t>(d));
    }
  } else {
    tensor.i64.resize(count);
    std::memcpy(tensor.i64.data(), data.bytes.data(), data.bytes.size());
  }
  tensor.shape = std::move(shape);
  call.inputs.push_back(std::move(tensor));
}

// A JSON string in ASCII without escapes (simdjson reads the others: it checks UTF-8 and
// unescapes) at `p`: its text in `out` and the end of the string, or nullptr.
const char* read_plain_string(const char* p, std::string_view& out) {
  if (*p != '"') {
    return nullptr;
  }
  const char* start = ++p;
  for (unsigned char c; (c = static_cast<unsigned char>(*p)) != '"'; ++p) {
    if (c < 0x20 || c >= 0x80 || c == '\\') { // the text's final NUL included
      return nullptr;
    }
  }
  out = std::string_view(start, static_cast<std::size_t>(p - start));
  return p + 1;
}

// A JSON object at `p` whose keys are plain strings (as above): calls `value(key, start)` for
// each member, which reads the value and returns its end, or nullptr to give up. Returns the end
// of the object, or nullptr.
template <class Value> const char* read_object_text(const char* p, const Value& value) {
  if (*p != '{') {
    return nullptr;
  }
  do {
    std::string_view key;
    p = read_plain_string(util::skip_json_space(p + 1), key);
    if (p == nullptr || *(p = util::skip_json_space(p)) != ':' ||
        (p = value(key, util::skip_json_space(p + 1))) == nullptr) {
      return nullptr;
    }
    p = util::skip_json_space(p);
  } while (*p == ',');
  return *p == '}' ? p + 1 : nullptr;
}

// A list of integers 0 to 10^18 - 1 at `p` (a V2 shape), appended to `out`: the end of the
// list, or nullptr.
const char* read_dims(const char* p, std::vector<std::int64_t>& out) {
  if (*p != '[') {
    return nullptr;
  }
  if (p = util::skip_json_space(p + 1); *p == ']') {
    return p + 1;
  }
  for (;;) {
    std::int64_t v = 0;
    int digits = 0;
    for (unsigned d; (d = static_cast<unsigned char>(*p) - unsigned{'0'}) <= 9; ++p) {
      if (++digits > 18 || (digits == 2 && v == 0)) {
        return nullptr; // too long, or a leading zero
      }
      v = v * 10 + d;
    }
    if (digits == 0) {
      return nullptr;
    }
    out.push_back(v);
    p = util::skip_json_space(p);
    if (*p == ']') {
      return p + 1;
    }
    if (*p != ',') {
      return nullptr;
    }
    p = util::skip_json_space(p + 1);
  }
}

// One input tensor of the body read by `read_v2_text`, at `p`: its `{...}` checked and added
// to `call`; the end of the object, or nullptr.
const char* read_v2_input_text(const char* p, const LoadedModel& model, std::size_t max_batch,
                               bool keep_images, InferCall& call) {
  onnx::Tensor tensor;
  std::vector<std::int64_t> shape;
  thread_local std::vector<double> data; // keeps its capacity: no allocation per request
  data.clear();
  bool has_name = false, has_shape = false, has_type = false, has_data = false;
  p = read_object_text(p, [&](std::string_view key, const char* v) -> const char* {
    std::string_view text;
    if (key == "name" && !has_name) {
      v = read_plain_string(v, text);
      tensor.name = text;
      has_name = true;
    } else if (key == "datatype" && !has_type) {
      v = read_plain_string(v, text);
      tensor.datatype = text;
      has_type = true;
    } else if (key == "shape" && !has_shape) {
      v = read_dims(v, shape);
      has_shape = true;
    } else if (key == "data" && !has_data) {
      v = util::read_short_numbers(v, data, max_batch * 1'000'000);
      has_data = true;
    } else {
      return nullptr;
    }
    return v;
  });
  if (p == nullptr || !has_name || !has_shape || !has_type || !has_data) {
    return nullptr;
  }
  add_v2_input(model, max_batch, keep_images, std::move(tensor), std::move(shape), {&data, {}},
               call);
  return p;
}

// The Open Inference Protocol's usual body, `{"id": "...", "inputs": [{"name": "...",
// "shape": [...], "datatype": "...", "data": [short numbers]}, ...]}` (keys in any order, each
// once, no others; "id" optional; strings in ASCII without escapes), read from the text without
// simdjson into `req` and `call`. Returns false, perhaps after adding inputs, at anything else:
// the caller then starts over with simdjson, which gives the answer (and the message) for every
// other body.
bool read_v2_text(const std::string& body, const LoadedModel& model, std::size_t max_batch,
                  bool keep_images, V2Request& req, InferCall& call) {
  // c_str(): the readers stop at the NUL that ends it.
  bool seen_inputs = false;
  const char* p = read_object_text(
      util::skip_json_space(body.c_str()), [&](std::string_view key, const char* v) -> const char* {
        if (key == "id" && !req.has_id) {
          std::string_view id;
          v = read_plain_string(v, id);
          req.id = id;
          req.has_id = true;
          return v;
        }
        if (key != "inputs" || seen_inputs || *v != '[') {
          return nullptr;
        }
        seen_inputs = true;
        do {
          v = read_v2_input_text(util::skip_json_space(v + 1), model, max_batch, keep_images, call);
        } while (v != nullptr && *(v = util::skip_json_space(v)) == ',');
        return v != nullptr && *v == ']' ? v + 1 : nullptr;
      });
  return p != nullptr && seen_inputs && util::skip_json_space(p) == body.c_str() + body.size();
}

// Reads a `"parameters"` object member of a request part (`what`): calls `member(key, value)`
// for each of its members.
template <class Member>
void read_parameters(od::value value, const std::string& what, const Member& member) {
  od::object params;
  if (value.get_object().get(params) != simdjson::SUCCESS) {
    refuse(what + ": expected an object");
  }
  for (auto field : params) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
      refuse("request body: not valid JSON");
    }
    member(key, field.value());
  }
}

bool read_bool(od::value value, const std::string& what) {
  bool b = false;
  if (value.get_bool().get(b) != simdjson::SUCCESS) {
    refuse(what + ": expected true or false");
  }
  return b;
}

// Decodes a V2 inference request for the models of stage 0 (`model`): `body` is its JSON,
// `binary` the binary tensor data after it (the bytes past Inference-Header-Content-Length).
V2Request decode_v2(const std::string& body, std::string_view binary, const LoadedModel& model,
                    std::size_t max_batch, bool keep_images, InferCall& call, bool fast) {
  V2Request req;
  if (fast && binary.empty()) {
    if (read_v2_text(body, model, max_batch, keep_images, req, call)) {
      return req;
    }
    reset_inputs(call);
    req = V2Request{};
  }
  auto& doc = parse_body(body);
  od::object obj;
  if (const auto err = doc.get_object().get(obj); err != simdjson::SUCCESS) {
    refuse(err == simdjson::INCORRECT_TYPE ? "request body: expected a JSON object with 'inputs'"
                                           : "request body: not valid JSON");
  }
  bool seen_inputs = false;
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
      refuse("request body: not valid JSON");
    }
    if (key == "id") {
      std::string_view id;
      if (field.value().get_string().get(id) != simdjson::SUCCESS) {
        refuse("id: expected a string");
      }
      req.id = std::string(id);
      req.has_id = true;
    } else if (key == "parameters") {
      read_parameters(field.value(), "parameters", [&](std::string_view k, od::value v) {
        if (k == "binary_data_output") {
          req.binary_output = read_bool(v, "parameters.binary_data_output");
        }
      });
    } else if (key == "outputs") {
      od::array list;
      if (field.value().get_array().get(list) != simdjson::SUCCESS) {
        refuse("outputs: expected a list of {\"name\": ...}");
      }
      for (auto item : list) {
        od::object o;
        if (item.get_object().get(o) != simdjson::SUCCESS) {
          refuse("outputs: expected a list of {\"name\": ...}");
        }
        const auto what = "outputs[" + std::to_string(req.outputs.size()) + "]";
        V2Output output;
        bool named = false;
        for (auto f : o) {
          std::string_view k;
          if (f.unescaped_key().get(k) != simdjson::SUCCESS) {
            refuse("request body: not valid JSON");
          }
          if (k == "name") {
            std::string_view name;
            if (f.value().get_string().get(name) != simdjson::SUCCESS) {
              refuse(what + ".name: expected a string");
            }
            output.name = name;
            named = true;
          } else if (k == "parameters") {
            read_parameters(f.value(), what + ".parameters", [&](std::string_view pk, od::value v) {
              if (pk == "binary_data") {
                output.binary = read_bool(v, what + ".parameters.binary_data");
              } else if (pk == "classification") {
                refuse(what + ".parameters.classification: the classification extension is not "
                              "supported (the simple form /api/v1/applications/{name}/predict "
                              "answers classes)");
              }
            });
          }
        }
        if (!named) {
          refuse(what + ": 'name' is required");
        }
        req.outputs.push_back(std::move(output));
      }
    } else if (key == "inputs") {
      seen_inputs = true;
      od::array list;
      if (field.value().get_array().get(list) != simdjson::SUCCESS) {
        refuse("inputs: expected a list of tensors");
      }
      std::size_t index = 0;
      std::size_t offset = 0; // in `binary`: the next input's binary data
      for (auto item : list) {
        const auto what = "inputs[" + std::to_string(index++) + "]";
        od::object t;
        if (item.get_object().get(t) != simdjson::SUCCESS) {
          refuse(what + ": expected an object {name, shape, datatype, data}");
        }
        onnx::Tensor tensor;
        std::vector<std::int64_t> shape;
        thread_local std::vector<double> data; // keeps its capacity: no allocation per request
        data.clear();
        std::vector<std::int64_t> data_shape;
        bool has_name = false, has_shape = false, has_type = false, has_data = false;
        std::optional<std::size_t> binary_size;
        for (auto f : t) {
          std::string_view k;
          if (f.unescaped_key().get(k) != simdjson::SUCCESS) {
            refuse("request body: not valid JSON");
          }
          if (k == "name") {
            std::string_view n;
            if (f.value().get_string().get(n) != simdjson::SUCCESS) {
              refuse(what + ".name: expected a string");
            }
            tensor.name = std::string(n);
            has_name = true;
          } else if (k == "shape") {
            od::array dims;
            if (f.value().get_array().get(dims) != simdjson::SUCCESS) {
              refuse(what + ".shape: expected a list of integers");
            }
            for (auto d : dims) {
              std::int64_t v = 0;
              if (d.get_int64().get(v) != simdjson::SUCCESS || v < 0) {
                refuse(what + ".shape: expected a list of integers >= 0");
              }
              shape.push_back(v);
            }
            has_shape = true;
          } else if (k == "datatype") {
            std::string_view dt;
            if (f.value().get_string().get(dt) != simdjson::SUCCESS) {
              refuse(what + ".datatype: expected a string such as \"FP32\"");
            }
            tensor.datatype = std::string(dt);
            has_type = true;
          } else if (k == "data") {
            od::value v;
            if (f.value().get(v) != simdjson::SUCCESS) {
              refuse(what + ".data: not valid JSON");
            }
            if (fast) {
              if (!read_flat(v, data, max_batch * 1'000'000)) {
                throw NotFlat{};
              }
            } else {
              std::size_t leaf = SIZE_MAX;
              flatten(v, data, data_shape, 0, leaf, what + ".data", max_batch * 1'000'000);
            }
            has_data = true;
          } else if (k == "parameters") {
            read_parameters(f.value(), what + ".parameters", [&](std::string_view pk, od::value v) {
              std::uint64_t n = 0;
              if (pk != "binary_data_size") {
                return;
              }
              if (v.get_uint64().get(n) != simdjson::SUCCESS) {
                refuse(what + ".parameters.binary_data_size: expected an integer >= 0");
              }
              binary_size = n;
            });
          }
        }
        if (binary_size && has_data) {
          refuse(what + ": 'data' and parameters.binary_data_size both given (one or the other)");
        }
        has_data = has_data || binary_size;
        if (!has_name || !has_shape || !has_type || !has_data) {
          refuse(what + ": '" +
                 std::string(!has_name    ? "name"
                             : !has_shape ? "shape"
                             : !has_type  ? "datatype"
                                          : "data") +
                 "' is required");
        }
        InputData input{&data, {}};
        if (binary_size) {
          if (*binary_size > binary.size() - offset) {
            refuse(what + ": parameters.binary_data_size is " + std::to_string(*binary_size) +
                   " but " + std::to_string(binary.size() - offset) +
                   " bytes of binary data are left after the JSON header" +
                   (binary.empty() ? " (the Inference-Header-Content-Length header gives the "
                                     "JSON header's size)"
                                   : ""));
          }
          input = {nullptr, binary.substr(offset, *binary_size)};
          offset += *binary_size;
        }
        add_v2_input(model, max_batch, keep_images, std::move(tensor), std::move(shape), input,
                     call);
      }
      if (offset != binary.size()) {
        refuse(std::to_string(binary.size() - offset) +
               " bytes of binary data after the JSON header belong to no input "
               "(parameters.binary_data_size)");
      }
    }
  }
  refuse_text_after(doc);
  if (!seen_inputs || call.inputs.empty()) {
    refuse("inputs: at least one input tensor is required");
  }
  return req;
}

// Writes output tensor `t` into `out`, its data as JSON, or, when `binary` is given, appended
// to `*binary` with its size in the tensor's parameters (the binary tensor data extension).
void put_tensor(std::string& out, const onnx::Tensor& t, std::string* binary) {
  out += "{\"name\":";
  util::append_json_string(out, t.name);
  out += ",\"datatype\":";
  util::append_json_string(out, t.datatype);
  out += ",\"shape\":[";
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    if (i) {
      out += ',';
    }
    put_int(out, t.shape[i]);
  }
  if (binary != nullptr) {
    const auto bytes = t.datatype == "FP32"
                           ? std::string_view(reinterpret_cast<const char*>(t.f32.data()),
                                              t.f32.size() * sizeof(float))
                           : std::string_view(reinterpret_cast<const char*>(t.i64.data()),
                                              t.i64.size() * sizeof(std::int64_t));
    out += "],\"parameters\":{\"binary_data_size\":";
    put_int(out, static_cast<std::int64_t>(bytes.size()));
    out += "}}";
    binary->append(bytes);
    return;
  }
  out += "],\"data\":[";
  if (t.datatype == "FP32") {
    for (std::size_t i = 0; i < t.f32.size(); ++i) {
      if (i) {
        out += ',';
      }
      put_float(out, t.f32[i]);
    }
  } else {
    for (std::size_t i = 0; i < t.i64.size(); ++i) {
      if (i) {
        out += ',';
      }
      put_int(out, t.i64[i]);
    }
  }
  out += "]}";
}

// The route of `name`, or the refusal: 404 for an unknown application, 503 for one that is
// stored but not served (its models failed to load), 400 for a malformed name.
std::shared_ptr<const Route> route_of(Platform& p, const std::string& name) {
  if (auto route = p.gateway->find(name)) {
    return route;
  }
  if (!api::is_valid_name(name)) {
    refuse("application name '" + name.substr(0, 80) + "': must match " +
               std::string(api::k_name_pattern),
           404);
  }
  try {
    (void)p.applications->get(name);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::not_found) {
      refuse(e.what(), 404);
    }
    throw;
  }
  refuse("application '" + name + "' is not ready (its models did not load; see the server log)",
         503);
}

// The version of a `/versions/{v}` route (its second capture group), or nothing.
std::optional<std::string> version_of(const Request& req) {
  if (req.matches.size() > 2 && req.matches[2].matched) {
    return req.matches[2].str();
  }
  return std::nullopt;
}

// Turns `/versions/{v}` into a pinned variant.
std::string pin_of(const Route& route, const Request& req,
                   const std::optional<std::string>& version) {
  auto pinned = req.get_header_value(api::routes::k_variant_header);
  if (version) {
    const auto v = api::parse_version_number(*version);
    if (v) {
      for (const auto& stage : route.stages) {
        for (const auto& slot : stage.variants) {
          if (slot->model->version == *v) {
            return slot->model->ref();
          }
        }
      }
    }
    refuse("application '" + route.name + "' does not serve version '" + version->substr(0, 40) +
               "'",
           404);
  }
  return pinned;
}

template <class Fn> void v2_guard(Platform& p, const Request& req, Response& res, Fn&& fn) {
  try {
    fn();
  } catch (const BadRequest& e) {
    send_raw_json(res, e.status, v2_error(e.message));
  } catch (const Error& e) {
    send_raw_json(res, api::http_status(e.kind()), v2_error(e.what()));
  } catch (const std::exception& e) {
    p.log(std::string("internal error in ") + req.method + " " + req.path + ": " + e.what());
    send_raw_json(res, 500, v2_error(std::string("internal error: ") + e.what()));
  }
}

// The request's body: as it came, or inflated into `inflated` when it came compressed (see
// `compressed_body`), at most the server's body limit. (A fresh string per request: one kept
// per worker would hold up to the limit, 256 MiB by default, on each of them.)
const std::string& body_of(const Platform& p, const Request& req, std::string& inflated) {
  const auto coding = compressed_body();
  if (!coding) {
    return req.body;
  }
  const auto name = *coding == util::Compression::gzip ? "gzip" : "deflate";
  try {
    util::inflate(req.body, *coding, p.options.max_body_bytes, inflated);
  } catch (const util::InflateError& e) {
    if (e.past_limit()) {
      refuse(std::string("request body (Content-Encoding: ") + name +
                 ") inflates to more than the server's limit of " +
                 std::to_string(p.options.max_body_bytes >> 20) +
                 " MiB (mlctl serve --max-body-mb)",
             413);
    }
    refuse(std::string("request body (Content-Encoding: ") + name + "): " + e.what() + " at byte " +
           std::to_string(e.offset()));
  }
  return inflated;
}

// Pins the variant the request asks for and reads its body into `call` with
// `decode(fast, body)`, first in fast mode, then, when that gives up, with the general decoder.
// A refusal is recorded under the request's trace id (Gateway::refused) on its way to the
// caller.
template <class Decode>
void read_request(Platform& p, const Route& route, const Request& req,
                  const std::optional<std::string>& version, InferCall& call, Decode&& decode) {
  try {
    call.pinned = pin_of(route, req, version);
    std::string inflated; // the decoders copy what they keep
    const std::string& body = body_of(p, req, inflated);
    try {
      decode(true, body);
    } catch (const NotFlat&) {
      reset_inputs(call);
      decode(false, body);
    }
  } catch (const BadRequest& e) {
    p.gateway->refused(route, call.trace_id, e.status, e.message);
    throw;
  } catch (const Error& e) {
    p.gateway->refused(route, call.trace_id, api::http_status(e.kind()), e.what());
    throw;
  }
}

// The size of the JSON header of a body with binary tensor data (the
// Inference-Header-Content-Length header), or nothing for a body of JSON alone.
std::optional<std::size_t> json_header_size(const Request& req, const std::string& body) {
  if (!req.has_header(k_json_header_size)) {
    return std::nullopt;
  }
  const auto text = req.get_header_value(k_json_header_size);
  std::size_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n > body.size()) {
    refuse(std::string(k_json_header_size) +
           ": expected the size of the body's JSON header, 0 to " + std::to_string(body.size()) +
           " bytes, got '" + text.substr(0, 40) + "'");
  }
  return n;
}

void v2_infer(Platform& p, const std::string& name, const std::optional<std::string>& version,
              const Request& req, Response& res) {
  const auto route = route_of(p, name);
  InferCall call;
  call.trace_id = trace_id_of(res);
  const auto& first = *route->stages.front().variants.front()->model;
  V2Request request;
  read_request(p, *route, req, version, call, [&](bool fast, const std::string& body) {
    const auto json_size = json_header_size(req, body);
    if (!json_size) {
      try {
        request = decode_v2(body, {}, first, static_cast<std::size_t>(p.options.max_batch),
                            !p.inference_sinks.empty(), call, fast);
      } catch (BadRequest& e) {
        if (e.message.starts_with("request body: not valid JSON") &&
            body.find("\"binary_data_size\"") != std::string::npos) {
          e.message += std::string(" (a body with binary tensor data needs the ") +
                       k_json_header_size + " header: the size of its JSON part)";
        }
        throw;
      }
      return;
    }
    thread_local std::string json; // the readers need a string (they stop at its NUL)
    json.assign(body, 0, *json_size);
    request = decode_v2(json, std::string_view(body).substr(*json_size), first,
                        static_cast<std::size_t>(p.options.max_batch), !p.inference_sinks.empty(),
                        call, fast);
  });
  const auto answer = p.gateway->infer(route, call);
  std::string out;
  out.reserve(256 + answer.outputs.size() * 64 * call.batch);
  out += "{\"model_name\":";
  util::append_json_string(out, name);
  out += ",\"model_version\":\"";
  put_int(out, answer.model->version);
  out += '"';
  if (request.has_id) {
    out += ",\"id\":";
    util::append_json_string(out, request.id);
  }
  out += ",\"parameters\":{\"trace_id\":";
  util::append_json_string(out, call.trace_id);
  out += ",\"model\":";
  util::append_json_string(out, answer.model->ref());
  out += ",\"variant\":";
  util::append_json_string(out, answer.role);
  out += "},\"outputs\":[";
  std::string binary;
  bool any = false;
  const auto put = [&](const onnx::Tensor& t, bool as_binary) {
    out += any ? "," : "";
    put_tensor(out, t, as_binary ? &binary : nullptr);
    any = true;
  };
  if (request.outputs.empty()) {
    for (const auto& t : answer.outputs) {
      put(t, request.binary_output);
    }
  } else {
    for (const auto& wanted : request.outputs) {
      const auto it = std::find_if(answer.outputs.begin(), answer.outputs.end(),
                                   [&](const auto& t) { return t.name == wanted.name; });
      if (it == answer.outputs.end()) {
        std::string names;
        for (const auto& t : answer.outputs) {
          names += (names.empty() ? "" : ", ") + t.name;
        }
        refuse("output '" + wanted.name.substr(0, 80) +
               "': the model has no such output (its outputs: " + names + ")");
      }
      put(*it, wanted.binary.value_or(request.binary_output));
    }
  }
  out += "]}";
  if (binary.empty()) {
    send_raw_json(res, 200, std::move(out));
    return;
  }
  // The binary tensor data extension: the JSON header, then the outputs' bytes.
  res.status = 200;
  res.set_header(k_json_header_size, std::to_string(out.size()));
  out += binary;
  res.set_content(std::move(out), "application/octet-stream");
}

void predict(Platform& p, const std::string& name, const Request& req, Response& res) {
  const auto route = route_of(p, name);
  InferCall call;
  call.trace_id = trace_id_of(res);
  const auto& first = *route->stages.front().variants.front()->model;
  read_request(p, *route, req, std::nullopt, call, [&](bool fast, const std::string& body) {
    decode_images(body, first, static_cast<std::size_t>(p.options.max_batch),
                  !p.inference_sinks.empty(), call, fast);
  });
  const auto answer = p.gateway->infer(route, call);
  std::vector<std::int64_t> classes;
  std::vector<float> probabilities;
  std::size_t n = 0;
  if (!classify(answer.outputs, call.batch, classes, probabilities, n)) {
    throw Error(ErrorKind::invalid_input,
                "application '" + name + "': " + answer.model->ref() +
                    " gives no class scores (an FP32 output [N, classes]); use /v2/models/" + name +
                    "/infer");
  }
  std::string out;
  out.reserve(64 + call.batch * (40 + n * 14));
  out += "{\"predictions\":[";
  for (std::size_t i = 0; i < call.batch; ++i) {
    out += i ? ",{\"class\":" : "{\"class\":";
    put_int(out, classes[i]);
    out += ",\"probabilities\":[";
    for (std::size_t k = 0; k < n; ++k) {
      if (k) {
        out += ',';
      }
      put_float(out, probabilities[i * n + k]);
    }
    out += "]}";
  }
  out += "],\"model\":";
  util::append_json_string(out, answer.model->ref());
  out += ",\"variant\":";
  util::append_json_string(out, answer.role);
  out += ",\"trace_id\":";
  util::append_json_string(out, call.trace_id);
  out += '}';
  send_raw_json(res, 200, std::move(out));
}

} // namespace

std::optional<InferenceRoute> match_inference_route(std::string_view target) {
  // cpp-httplib decodes %-escapes and splits queries before it matches: such targets go to it.
  if (target.find_first_of("%?") != std::string_view::npos) {
    return std::nullopt;
  }
  const auto segment = [](std::string_view& rest) {
    const auto end = rest.find('/');
    const auto s = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    return s;
  };
  InferenceRoute route;
  std::string_view rest = target;
  if (rest.starts_with("/api/v1/applications/")) {
    rest.remove_prefix(std::string_view("/api/v1/applications/").size());
    const auto name = segment(rest);
    if (name.empty() || rest != "predict") {
      return std::nullopt;
    }
    route.kind = InferenceRoute::Kind::predict;
    route.name = name;
    return route;
  }
  if (rest.starts_with("/v2/models/")) {
    rest.remove_prefix(std::string_view("/v2/models/").size());
    const auto name = segment(rest);
    if (name.empty()) {
      return std::nullopt;
    }
    if (rest.starts_with("versions/")) {
      rest.remove_prefix(std::string_view("versions/").size());
      const auto version = segment(rest);
      if (version.empty()) {
        return std::nullopt;
      }
      route.version = std::string(version);
    }
    if (rest != "infer") {
      return std::nullopt;
    }
    route.kind = InferenceRoute::Kind::v2_infer;
    route.name = name;
    return route;
  }
  return std::nullopt;
}

void serve_inference(Platform& p, const InferenceRoute& route, const Request& req, Response& res) {
  if (route.kind == InferenceRoute::Kind::v2_infer) {
    v2_guard(p, req, res, [&] { v2_infer(p, route.name, route.version, req, res); });
    return;
  }
  try {
    predict(p, route.name, req, res);
  } catch (const BadRequest& e) {
    send_error(res, e.status,
               e.status == 404   ? "not_found"
               : e.status == 413 ? api::k_code_too_large
               : e.status == 503 ? "unavailable"
                                 : "invalid_input",
               e.message);
  } catch (const Error& e) {
    send_error(res, e);
  } catch (const std::exception& e) {
    p.log(std::string("internal error in ") + req.method + " " + req.path + ": " + e.what());
    send_error(res, 500, "internal", std::string("internal error: ") + e.what());
  }
}

void register_application_routes(httplib::Server& http, Platform& p) {
  const auto& log = p.log;
  // The hot path first: cpp-httplib tries the patterns in order.
  http.Post(pattern::k_application_predict, [&p](const Request& req, Response& res) {
    serve_inference(p, {InferenceRoute::Kind::predict, req.matches[1].str(), std::nullopt}, req,
                    res);
  });
  http.Get(pattern::k_applications, guarded(log, [&p](const Request&, Response& res) {
             send_json(res, 200, p.applications->list());
           }));
  http.Get(pattern::k_application, guarded(log, [&p](const Request& req, Response& res) {
             auto app = p.applications->get(application_of(req));
             app["limits"] = {{"max_batch", p.options.max_batch}};
             send_json(res, 200, app);
           }));
  http.Put(pattern::k_application, guarded(log, [&p](const Request& req, Response& res) {
             const auto name = application_of(req);
             if (bool_param(req, "dry_run")) {
               send_json(res, 200, p.applications->check(body_json(req), name));
               return;
             }
             auto result = p.applications->apply(body_json(req), name, actor_of(req));
             send_json(res, result["result"] == "created" ? 201 : 200, result);
           }));
  http.Delete(pattern::k_application, guarded(log, [&p](const Request& req, Response& res) {
                send_json(res, 200, p.applications->remove(application_of(req), actor_of(req)));
              }));
  http.Get(pattern::k_application_revisions, guarded(log, [&p](const Request& req, Response& res) {
             send_json(res, 200, p.applications->revisions(application_of(req)));
           }));
  http.Post(pattern::k_application_rollback, guarded(log, [&p](const Request& req, Response& res) {
              const auto name = application_of(req);
              std::optional<std::int64_t> revision;
              if (!req.body.empty()) {
                const auto body = body_json(req);
                if (!body.is_object()) {
                  throw Error(ErrorKind::invalid_input, "request body: expected {\"revision\": N}");
                }
                if (body.contains("revision") && !body["revision"].is_null()) {
                  if (!body["revision"].is_number_integer() ||
                      body["revision"].get<std::int64_t>() < 1) {
                    throw Error(ErrorKind::invalid_input, "revision: must be an integer >= 1");
                  }
                  revision = body["revision"].get<std::int64_t>();
                }
              }
              send_json(res, 200, p.applications->rollback(name, revision, actor_of(req)));
            }));
}

void register_gateway_routes(httplib::Server& http, Platform& p) {
  http.Post(pattern::k_v2_infer, [&p](const Request& req, Response& res) {
    serve_inference(p, {InferenceRoute::Kind::v2_infer, req.matches[1].str(), version_of(req)}, req,
                    res);
  });
  http.Get(pattern::k_v2, [](const Request&, Response& res) {
    std::string out = "{\"name\":\"mlctl\",\"version\":";
    util::append_json_string(out, build::version());
    out += ",\"extensions\":[\"binary_tensor_data\"]}";
    send_raw_json(res, 200, std::move(out));
  });
  http.Get(pattern::k_v2_live, [](const Request&, Response& res) { res.status = 200; });
  http.Get(pattern::k_v2_ready, [&p](const Request&, Response& res) {
    if (p.ready.load() && !p.stopping.load()) {
      res.status = 200;
    } else {
      send_raw_json(res, 503, v2_error(p.stopping.load() ? "shutting down" : "starting"));
    }
  });
  http.Get(pattern::k_v2_model_ready, [&p](const Request& req, Response& res) {
    v2_guard(p, req, res, [&] {
      const auto route = route_of(p, req.matches[1].str());
      (void)pin_of(*route, req, version_of(req));
      res.status = 200; // the status alone answers (the protocol's readiness probes)
    });
  });
  http.Get(pattern::k_v2_model, [&p](const Request& req, Response& res) {
    v2_guard(p, req, res, [&] {
      const auto name = req.matches[1].str();
      const auto route = route_of(p, name);
      const auto pinned = pin_of(*route, req, version_of(req));
      const auto tensors = [](const std::vector<onnx::TensorInfo>& list) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& t : list) {
          out.push_back({{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}});
        }
        return out;
      };
      nlohmann::json versions = nlohmann::json::array();
      const auto& last = route->stages.back();
      for (const auto& slot : last.variants) {
        const auto v = std::to_string(slot->model->version);
        if (!slot->shadow && std::find(versions.begin(), versions.end(), v) == versions.end() &&
            (pinned.empty() || slot->model->ref() == pinned)) {
          versions.push_back(v);
        }
      }
      const auto& first = *route->stages.front().variants.front()->model;
      const auto& answering =
          *last.variants.at(manifest::primary_variant(route->application.stages.back()))->model;
      send_json(res, 200,
                {{"name", name},
                 {"versions", versions},
                 {"platform", "onnx_onnxv1"},
                 {"inputs", tensors(first.model.inputs())},
                 {"outputs", tensors(answering.model.outputs())}});
    });
  });
}

} // namespace mlctl::server::detail
