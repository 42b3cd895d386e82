// The registry's REST routes (see api/routes.hpp for the table).

#include "api/errors.hpp"
#include "api/names.hpp"
#include "api/routes.hpp"
#include "api/types.hpp"
#include "server/http_internal.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace mlctl::server::detail {

namespace {

namespace pattern = api::routes::pattern;
using httplib::ContentReader;
using httplib::Request;
using httplib::Response;

std::string segment(const Request& req, std::size_t i) { return req.matches[static_cast<int>(i)].str(); }

std::string model_name(const Request& req) {
  auto name = segment(req, 1);
  api::validate_name(name);
  return name;
}

api::VersionSelector selector(const Request& req) { return api::parse_version_selector(segment(req, 2)); }

std::vector<std::pair<std::string, std::string>> tag_filters(const Request& req) {
  std::vector<std::pair<std::string, std::string>> out;
  for (std::size_t i = 0; i < req.get_param_value_count("tag"); ++i) {
    out.push_back(parse_tag_assignment(req.get_param_value("tag", i)));
  }
  return out;
}

// Reads and discards what is left of a body we refuse, so the answer reaches the client.
void drain(const ContentReader& reader, std::uint64_t limit) {
  std::uint64_t seen = 0;
  reader([&](const char*, std::size_t n) {
    seen += n;
    return seen <= limit;
  });
}

void upload(Platform& p, const Request& req, Response& res, const ContentReader& reader) {
  const auto max = p.options.max_body_bytes;
  std::string name;
  bool force_new = false;
  try {
    name = model_name(req);
    force_new = bool_param(req, "force_new");
    if (req.is_multipart_form_data()) {
      throw Error(ErrorKind::invalid_input, "send the artifact (tar.gz) as the request body, not as a multipart form");
    }
  } catch (const Error&) {
    drain(reader, max);
    throw;
  }
  auto file = p.registry->artifacts().begin_upload();
  // Validation runs on its own thread while the body arrives; leaving early abandons it.
  ArtifactCheck check(p.artifact_limits);
  bool too_large = false;
  bool cut = false;
  const bool complete = reader([&](const char* data, std::size_t n) {
    if (file->size() + n > max) {
      too_large = true;
      return false;
    }
    if (p.past_stop_deadline()) {
      cut = true;
      return false;
    }
    file->write(data, n);
    check.feed(data, n);
    return true;
  });
  note_bytes_in(file->size());
  // cpp-httplib refuses a Content-Length over the limit itself (setting 413) before calling us.
  if (too_large || (!complete && res.status == 413)) {
    res.set_header("Connection", "close");
    send_error(res, 413, api::k_code_too_large,
               "request body is larger than the server's limit of " + std::to_string(max >> 20) +
                   " MiB (mlctl serve --max-body-mb)");
    return;
  }
  if (cut) {
    throw Error(ErrorKind::unavailable, "the server is shutting down; upload again");
  }
  if (!complete) {
    throw Error(ErrorKind::invalid_input, "upload interrupted: the body ended early");
  }
  if (file->size() == 0) {
    throw Error(ErrorKind::invalid_input, "empty body: send the model artifact (tar.gz) as the request body");
  }
  check.end_input();
  file->finish(); // the fsync overlaps the end of the check
  const auto checked = check.finish(file->path());
  const auto result = p.registry->add_version(name, *file, checked, force_new, actor_of(req));
  res.set_header("Location", api::routes::version(result.version.name, std::to_string(result.version.version)));
  send_json(res, result.created ? 201 : 200, result);
}

void download(Platform& p, const Request& req, Response& res) {
  const auto name = model_name(req);
  const auto art = p.registry->artifact(name, selector(req));
  const auto etag = "\"" + art.sha256 + "\"";
  res.set_header("ETag", etag);
  res.set_header("X-Mlctl-Sha256", art.sha256);
  res.set_header("X-Mlctl-Version", std::to_string(art.version));
  if (const auto inm = req.get_header_value("If-None-Match"); inm == etag || inm == art.sha256) {
    res.status = 304;
    return;
  }
  // Open now: a concurrent delete unlinks the name, not the bytes we are sending.
  const int fd = ::open(art.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // 409, not 500: nothing a retry changes until an upload of the same bytes restores them.
    const int err = errno;
    throw Error(
        err == ENOENT ? ErrorKind::conflict : ErrorKind::io,
        "model " + name + ":" + std::to_string(art.version) +
            ": its artifact file cannot be read from the data directory: " + std::strerror(err) +
            (err == ENOENT ? " (an upload of the same model restores it: mlctl catalog "
                             "upload DIR)"
                           : ""));
  }
  res.set_header("Content-Disposition",
                 "attachment; filename=\"" + name + "-" + std::to_string(art.version) + ".tar.gz\"");
  auto buffer = std::make_shared<std::vector<char>>(1 << 20);
  res.set_content_provider(
      art.size, "application/gzip",
      [fd, buffer, &p](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        if (p.past_stop_deadline()) {
          return false;
        }
        const auto want = std::min(length, buffer->size());
        const auto n = ::pread(fd, buffer->data(), want, static_cast<off_t>(offset));
        if (n <= 0) {
          return false;
        }
        return sink.write(buffer->data(), static_cast<std::size_t>(n));
      },
      [fd](bool) { ::close(fd); });
  res.status = 200;
}

} // namespace

void register_registry_routes(httplib::Server& http, Platform& p) {
  const auto& log = p.log;
  http.Get(pattern::k_models, guarded(log, [&p](const Request& req, Response& res) {
             ModelQuery q;
             q.prefix = req.get_param_value("prefix");
             q.tags = tag_filters(req);
             q.limit = int_param(req, "limit", 100, 1, 10000);
             q.page_token = req.get_param_value("page_token");
             send_json(res, 200, p.registry->list_models(q));
           }));
  http.Get(pattern::k_model, guarded(log, [&p](const Request& req, Response& res) {
             send_json(res, 200, p.registry->get_model(model_name(req)));
           }));
  http.Get(pattern::k_versions, guarded(log, [&p](const Request& req, Response& res) {
             const auto name = model_name(req);
             VersionQuery q;
             q.tags = tag_filters(req);
             q.limit = int_param(req, "limit", 100, 1, 10000);
             q.page_token = int_param(req, "page_token", 0, 0, std::int64_t{1} << 53);
             const auto order = req.get_param_value("order");
             if (!order.empty() && order != "asc" && order != "desc") {
               throw Error(ErrorKind::invalid_input, "order '" + order.substr(0, 20) + "': expected asc or desc");
             }
             q.descending = order == "desc";
             res.status = 200;
             res.set_content(api::to_json_text(p.registry->list_versions(name, q)), "application/json");
           }));
  http.Post(pattern::k_versions,
            guarded(log, [&p](const Request& req, Response& res, const ContentReader& reader) {
              upload(p, req, res, reader);
            }));
  http.Get(pattern::k_version, guarded(log, [&p](const Request& req, Response& res) {
             send_json(res, 200, p.registry->get_version(model_name(req), selector(req)));
           }));
  http.Delete(pattern::k_version, guarded(log, [&p](const Request& req, Response& res) {
                send_json(res, 200, p.registry->delete_version(model_name(req), selector(req), actor_of(req)));
              }));
  http.Get(pattern::k_artifact,
           guarded(log, [&p](const Request& req, Response& res) { download(p, req, res); }));
  http.Patch(pattern::k_tags, guarded(log, [&p](const Request& req, Response& res) {
               const auto name = model_name(req);
               const auto sel = selector(req);
               const auto update = api::from_json_value<api::TagUpdate>(body_json(req), "request body");
               send_json(res, 200, p.registry->update_tags(name, sel, update, actor_of(req)));
             }));
  http.Get(pattern::k_aliases, guarded(log, [&p](const Request& req, Response& res) {
             send_json(res, 200, p.registry->list_aliases(model_name(req)));
           }));
  http.Put(pattern::k_alias, guarded(log, [&p](const Request& req, Response& res) {
             const auto name = model_name(req);
             const auto alias = segment(req, 2);
             const auto update = api::from_json_value<api::AliasUpdate>(body_json(req), "request body");
             send_json(res, 200, p.registry->set_alias(name, alias, update.version, actor_of(req)));
           }));
  http.Delete(pattern::k_alias, guarded(log, [&p](const Request& req, Response& res) {
                const auto name = model_name(req);
                const auto alias = segment(req, 2);
                p.registry->delete_alias(name, alias, actor_of(req));
                send_json(res, 200, {{"name", name}, {"alias", alias}, {"deleted", true}});
              }));
  http.Get(pattern::k_events, guarded(log, [&p](const Request& req, Response& res) {
             const auto q = parse_event_query(req.get_param_value("since"), req.get_param_value("until"),
                                              req.get_param_value("name"), req.get_param_value("limit"));
             send_json(res, 200, p.registry->events(q));
           }));
  http.Post(pattern::k_gc, guarded(log, [&p](const Request& req, Response& res) {
              send_json(res, 200, p.registry->gc(bool_param(req, "dry_run"), actor_of(req)));
            }));
}

} // namespace mlctl::server::detail
