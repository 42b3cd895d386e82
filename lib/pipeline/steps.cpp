#include "pipeline/steps.hpp"

#include "artifact/sha256.hpp"
#include "data/sources.hpp"

namespace mlctl::pipeline {

namespace fs = std::filesystem;

namespace {

std::string absolute_text(const fs::path& p) {
  return key_path(p).string();
}

} // namespace

StepSpec fetch_step(const data::FetchOptions& options) {
  StepSpec spec;
  spec.step = "fetch-mnist";
  const data::Source source = data::parse_source(options.source);
  switch (source.kind) {
  case data::SourceKind::idx_directory: {
    // Only the four files read count, not whatever else shares the directory.
    nlohmann::json files = nlohmann::json::object();
    for (const auto& f : data::find_idx_files(source.location)) {
      files[f.filename().string()] = "sha256:" + artifact::sha256_file(f);
    }
    spec.inputs["source"] = files;
    break;
  }
  case data::SourceKind::npz:
  case data::SourceKind::npm_tarball:
  case data::SourceKind::npm_directory:
    spec.inputs["source"] = path_digest(source.location);
    break;
  case data::SourceKind::automatic:
    spec.parameters["mirrors"] = options.mirrors;
    break;
  case data::SourceKind::http:
  case data::SourceKind::npm_package:
    break;
  }
  // A local source (hashed above) is a path; the others are URLs and package names.
  spec.parameters["source"] =
      spec.inputs.contains("source") ? absolute_text(source.location) : source.location;
  spec.parameters["kind"] = std::string(data::to_string(source.kind));
  spec.parameters["test_fraction"] = options.test_fraction;
  spec.parameters["out"] = absolute_text(options.out);
  return spec;
}

StepSpec train_step(const model::TrainOptions& o) {
  StepSpec spec;
  spec.step = "train";
  spec.inputs["dataset"] = path_digest(o.data_dir);
  if (!o.merge_dirs.empty()) {
    nlohmann::json merged = nlohmann::json::array();
    for (const auto& dir : o.merge_dirs) {
      merged.push_back(path_digest(dir));
      spec.parameters["merge"].push_back(absolute_text(dir));
    }
    spec.inputs["merge"] = merged;
  }
  spec.parameters.update({
      {"data", absolute_text(o.data_dir)},
      {"out", absolute_text(o.out_dir)},
      {"name", o.name},
      {"hidden", o.hidden},
      {"optimizer", std::string(nn::to_string(o.optimizer))},
      {"learning_rate", o.learning_rate},
      {"batch_size", o.batch_size},
      {"steps", o.steps},
      {"epochs", o.steps != 0 ? 0 : o.epochs},
      {"seed", o.seed},
      {"threads", o.threads},
      {"autoencoder", o.autoencoder},
  });
  if (o.autoencoder) {
    spec.parameters["ae_hidden"] = o.ae_hidden;
    spec.parameters["ae_epochs"] = o.ae_epochs;
    spec.parameters["ae_learning_rate"] = o.ae_learning_rate;
  }
  return spec;
}

StepSpec upload_step(const fs::path& model, const std::string& name, const std::string& server) {
  StepSpec spec;
  spec.step = "catalog-upload";
  spec.inputs["model"] = path_digest(model);
  spec.parameters = {{"name", name}, {"server", server}};
  return spec;
}

} // namespace mlctl::pipeline
