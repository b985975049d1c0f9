// alloc_count.cpp: the replaced global allocation functions. They count and
// forward to malloc; nothing else in the program changes.
#include "alloc_count.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace ipcbus::bench {
namespace {
std::atomic<std::uint64_t> g_allocations{0};

void* counted(std::size_t n) {
  // relaxed: a counter read by the same thread around the measured loop.
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}

void* counted_aligned(std::size_t n, std::align_val_t a) {
  // relaxed: as above.
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto align = static_cast<std::size_t>(a);
  const std::size_t size = (n + align - 1) / align * align;
  if (void* p = std::aligned_alloc(align, size == 0 ? align : size)) {
    return p;
  }
  throw std::bad_alloc();
}
}  // namespace

// relaxed: see counted().
std::uint64_t heap_allocations() {
  return g_allocations.load(std::memory_order_relaxed);
}

}  // namespace ipcbus::bench

void* operator new(std::size_t n) {
  return ipcbus::bench::counted(n);
}
void* operator new[](std::size_t n) {
  return ipcbus::bench::counted(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return ipcbus::bench::counted_aligned(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return ipcbus::bench::counted_aligned(n, a);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ipcbus::bench::counted(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ipcbus::bench::counted(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
