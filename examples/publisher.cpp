// example_publisher BUS COUNT: publish COUNT readings on sensors/<room>/temp.
#include <cstdio>
#include <ipcbus/bus.hpp>
#include <string>

int main(int argc, char** argv) {
  ipcbus::OpenOptions options;
  options.name = argc > 1 ? argv[1] : "";
  const int count = argc > 2 ? std::stoi(argv[2]) : 10;
  auto bus = ipcbus::Bus::open(options);
  if (!bus) {
    std::fprintf(stderr, "example_publisher: %s\n", bus.error().message.c_str());
    return 1;
  }
  ipcbus::Publisher publisher = bus->publisher();
  int undelivered = 0;
  for (int i = 0; i < count; ++i) {
    const std::string reading = std::to_string(20.0 + i * 0.5);
    const ipcbus::PublishResult r = publisher.publish("sensors/kitchen/temp", reading);
    if (!r.ok() || r.skipped != 0) {
      ++undelivered;
    }
  }
  std::printf("published %d, undelivered %d\n", count, undelivered);
  return undelivered == 0 ? 0 : 1;
}
