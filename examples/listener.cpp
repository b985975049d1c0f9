// example_listener BUS COUNT: receive COUNT events matching sensors/+/temp.
#include <chrono>
#include <cstdio>
#include <ipcbus/bus.hpp>
#include <string>

int main(int argc, char** argv) {
  ipcbus::OpenOptions options;
  options.name = argc > 1 ? argv[1] : "";
  const int count = argc > 2 ? std::stoi(argv[2]) : 10;
  auto bus = ipcbus::Bus::open(options);
  if (!bus) {
    std::fprintf(stderr, "example_listener: %s\n", bus.error().message.c_str());
    return 1;
  }
  ipcbus::ListenerOptions listener_options;
  listener_options.overflow = ipcbus::Overflow::kBlock;  // lose nothing
  auto listener = bus->listen(listener_options);
  if (!listener) {
    std::fprintf(stderr, "example_listener: %s\n", listener.error().message.c_str());
    return 1;
  }
  if (auto ok = listener->subscribe("sensors/+/temp"); !ok) {
    std::fprintf(stderr, "example_listener: %s\n", ok.error().message.c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  int received = 0;
  while (received < count) {
    auto sample = listener->receive_for(std::chrono::seconds(10));
    if (!sample) {
      std::fprintf(stderr, "example_listener: nothing for 10 s after %d events\n", received);
      return 1;
    }
    std::printf("%.*s %.*s\n", static_cast<int>(sample->topic().size()), sample->topic().data(),
                static_cast<int>(sample->payload_text().size()), sample->payload_text().data());
    ++received;
  }
  return 0;
}
