#pragma once
// What `fetch-mnist` shares with `reproduce`, which fetches a recorded source again.

#include "commands/context.hpp"
#include "data/fetch.hpp"

namespace mlctl::cli {

// Sets the progress, log and downloaders (`client::download_cached` into `fetch.cache_dir`,
// default `data::default_cache_dir()`, with `retries` and a per-download `timeout` in seconds,
// 0 = none) of `fetch`, as `fetch-mnist` uses them.
void wire_fetch_downloads(data::FetchOptions& fetch, const Context& ctx, int retries,
                          double timeout);

} // namespace mlctl::cli
