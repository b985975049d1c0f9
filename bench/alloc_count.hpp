// alloc_count.hpp: every heap allocation this program makes, counted by a
// replaced global operator new (alloc_count.cpp), so that ipcbus-bench can
// show the allocations per event of the data path in the same run.
#pragma once

#include <cstdint>

namespace ipcbus::bench {

std::uint64_t heap_allocations();

}  // namespace ipcbus::bench
