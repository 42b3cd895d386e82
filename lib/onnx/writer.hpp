#pragma once
// Exports trained dense networks (`nn::Mlp`) as ONNX models (IR version 8, opset 13) that
// `onnx.checker.check_model`, onnxruntime and this module's runtime accept.

#include "nn/mlp.hpp"

#include <string>

namespace mlctl::onnx {

struct OnnxExportOptions {
  std::string producer_version; // ModelProto.producer_version, e.g. the mlctl version
  std::string doc;              // ModelProto.doc_string; empty for none
};

// Returns the serialized ModelProto of a classifier: input `input` FP32 [N,784] (`N` a
// dim_param; the width is the first layer's), one Gemm (transB = 1, B = weight out×in as
// float32 raw_data) plus its activation per layer, outputs `probabilities` FP32 [N,classes]
// (Softmax, axis 1, over the last layer) and `class` INT64 [N] (ArgMax, axis 1, keepdims 0).
// The last layer's activation must be `softmax` or `none`. The same network and options give
// the same bytes. Throws `Error{invalid_input}` for an empty network, inconsistent layer sizes
// or another activation on the last layer.
std::string export_classifier(const nn::Mlp& mlp, const OnnxExportOptions& options);

// Returns the serialized ModelProto of an autoencoder: input `input` FP32 [N,in], a Gemm plus
// activation per layer, output `reconstruction` FP32 [N,out]. Deterministic like
// `export_classifier`. Throws `Error{invalid_input}` for an empty network or inconsistent
// layer sizes.
std::string export_autoencoder(const nn::Mlp& mlp, const OnnxExportOptions& options);

} // namespace mlctl::onnx
