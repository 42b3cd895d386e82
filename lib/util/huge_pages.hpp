#pragma once
// Transparent huge pages for large buffers written once, front to back (a decoded dataset, an
// extracted model file, a tensor): first-touch page faults are a large part of filling tens of
// megabytes, above all on virtual machines, and 2 MB pages make 512 times fewer of them. A hint
// only: without THP support (or with THP "never") nothing changes.

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace mlctl::util {

inline constexpr std::size_t k_huge_page = std::size_t{2} << 20;

// Reserves `n` elements in `buffer` (a std::vector or std::string) and, when that is at least
// four huge pages, asks for huge pages over the whole 2 MB pages it spans.
template <class Buffer> void reserve_huge(Buffer& buffer, std::size_t n) {
  if (buffer.capacity() >= n) {
    return;
  }
  buffer.reserve(n);
  const std::size_t bytes = n * sizeof(*buffer.data());
  if (bytes < 4 * k_huge_page) {
    return;
  }
  const auto begin = reinterpret_cast<std::uintptr_t>(buffer.data());
  const std::uintptr_t first = (begin + k_huge_page - 1) & ~(k_huge_page - 1);
  const std::uintptr_t last = (begin + bytes) & ~(k_huge_page - 1);
  if (last > first) {
    ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
}

} // namespace mlctl::util
