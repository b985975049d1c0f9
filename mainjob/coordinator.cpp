// coordinator.cpp: the process the user starts. It computes what every filter
// should receive, creates a fresh bus, starts the listeners and, once they are
// all subscribed, the publishers; shows progress; ends the listeners with the
// control event; checks every count, drop, order and integrity figure; prints
// the table; and removes the bus. Whatever goes wrong, no child outlives it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>

#include "children.hpp"
#include "event_log.hpp"
#include "ipcbus/topic.hpp"
#include "replay.hpp"

namespace replay {

namespace {

using Clock = std::chrono::steady_clock;

// A fatal problem of the run: the message is printed and the exit code is 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// SIGINT, SIGTERM or SIGHUP arrived: children are killed, exit code 128 + signo.
struct Interrupted {
  int signo;
};

// Removes the bus's name when the run ends, however it ends.
class BusRemover {
 public:
  BusRemover() = default;
  BusRemover(const BusRemover&) = delete;
  BusRemover& operator=(const BusRemover&) = delete;
  ~BusRemover() {
    if (!name_.empty()) {
      (void)ipcbus::Bus::destroy(name_);
    }
  }
  void arm(std::string name) { name_ = std::move(name); }

 private:
  std::string name_;
};

bool shm_exists(const std::string& bus) {
  return access(("/dev/shm/ipcbus." + bus).c_str(), F_OK) == 0;
}

// Removes the buses named replay-<pid> that are ours and whose coordinator is
// gone: one killed by SIGKILL cannot remove its own (its children die with it).
void remove_stale_buses() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string file = entry.path().filename().string();
    static constexpr std::string_view kPrefix = "ipcbus.replay-";
    if (!file.starts_with(kPrefix) || file.size() == kPrefix.size() || file.size() > 24 ||
        file.find_first_not_of("0123456789", kPrefix.size()) != std::string::npos) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(std::stol(file.substr(kPrefix.size())));
    struct stat st {};
    if (pid == getpid() || kill(pid, 0) == 0 || errno == EPERM ||
        stat(entry.path().c_str(), &st) != 0 || st.st_uid != geteuid()) {
      continue;  // ours to replace below, or alive, or not ours
    }
    const std::string bus = file.substr(std::string_view("ipcbus.").size());
    if (ipcbus::Bus::destroy(bus)) {
      std::fprintf(stderr, "ipcbus-replay: removed bus %s, left by a coordinator that is gone\n",
                   bus.c_str());
    }
  }
}

std::string micros(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(ns) / 1000.0);
  return buf;
}

std::string with_commas(std::uint64_t v) {
  std::string digits = std::to_string(v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) {
      out.push_back(',');
    }
    out.push_back(digits[i]);
  }
  return out;
}

// What one listener should get and what it reported.
struct ListenerRow {
  std::string filter;
  std::uint64_t expected = 0;
  Child* child = nullptr;
  nlohmann::json report;
};

class Coordinator {
 public:
  explicit Coordinator(const CoordinatorOptions& o) : o_(o), config_(bus_config(o)) {}
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;
  ~Coordinator();
  int run();

 private:
  void prepare_expectations();
  void create_bus();
  void set_up_signals_and_progress();
  void start_listeners();
  void start_publishers();
  void go();
  void publish_control();
  bool print_results();

  // Waits, pumping child output, until every child of `group` has written a
  // line starting with `word`; with `and_exit`, until each has exited too.
  void wait_for(const std::vector<Child*>& group, const std::string& word, bool and_exit);
  void pump(int timeout_ms);
  void check_children();
  void print_progress(bool final_line);
  std::uint64_t published_so_far() const;
  static const std::string* line_with(const Child& c, const std::string& word);
  static nlohmann::json report_of(const Child& c);

  static ipcbus::Config bus_config(const CoordinatorOptions& o);

  CoordinatorOptions o_;
  ipcbus::Config config_;  // what the bus is created with
  std::string bus_name_;
  std::string exe_;
  std::uint64_t lines_ = 0;
  std::uint64_t distinct_topics_ = 0;
  std::uint64_t total_events_ = 0;
  std::uint64_t expected_deliveries_ = 0;
  std::vector<ListenerRow> rows_;
  std::vector<Child*> listeners_;
  std::vector<Child*> publishers_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point deadline_;
  Clock::time_point go_at_{};
  Clock::time_point done_at_{};
  Clock::time_point next_progress_{};
  bool progress_on_ = false;
  bool stderr_is_tty_ = false;
  sigset_t child_mask_{};
  int signal_fd_ = -1;
  int progress_fd_ = -1;
  std::uint64_t* progress_ = nullptr;  // read only; mapped writable for atomic_ref
  std::size_t progress_bytes_ = 0;

  // Destroyed in reverse order: children are killed first, then the bus
  // handles go, then the bus's name is removed.
  BusRemover remover_;
  std::optional<ipcbus::Bus> bus_;
  std::optional<ipcbus::Publisher> control_;
  ChildSet children_;
};

ipcbus::Config Coordinator::bus_config(const CoordinatorOptions& o) {
  ipcbus::Config config;
  const auto listeners = static_cast<std::uint32_t>(o.filters.size());
  config.max_listeners = std::max<std::uint32_t>(config.max_listeners, listeners + 8);
  // Enough small chunks for every ring to be full at once, plus some in
  // flight; larger classes keep their defaults and publishers wait when they
  // run out (see publisher_role.cpp).
  config.pools.front().count =
      std::max<std::uint32_t>(config.pools.front().count, (listeners + 2) * config.ring_capacity);
  return config;
}

Coordinator::~Coordinator() {
  children_.kill_all();  // before the descriptors they share go
  if (progress_ != nullptr) {
    munmap(progress_, progress_bytes_);
  }
  for (int fd : {progress_fd_, signal_fd_}) {
    if (fd >= 0) {
      close(fd);
    }
  }
}

void Coordinator::prepare_expectations() {
  for (const std::string& f : o_.filters) {
    if (auto ok = ipcbus::check_topic_filter(f, 256); !ok) {
      throw Failure("bad filter '" + f + "': " + ok.error().message);
    }
  }
  // Lines are cut to the largest payload exactly as the publishers cut them.
  const LogFile log = read_log(o_.input, config_.pools.back().payload_bytes);
  lines_ = log.lines.size();
  total_events_ = lines_ * o_.repeat;

  std::vector<std::uint64_t> per_filter(o_.filters.size(), 0);
  std::set<std::string> topics;
  std::string topic;
  for (std::string_view line : log.lines) {
    derive_topic(line, topic);
    if (auto ok = ipcbus::check_topic_name(topic, 256); !ok) {
      throw Failure("derived an invalid topic '" + topic + "': " + ok.error().message);  // a bug
    }
    topics.insert(topic);
    for (std::size_t i = 0; i < o_.filters.size(); ++i) {
      per_filter[i] += ipcbus::filter_matches(o_.filters[i], topic) ? 1 : 0;
    }
  }
  distinct_topics_ = topics.size();
  for (std::size_t i = 0; i < o_.filters.size(); ++i) {
    rows_.push_back({o_.filters[i], per_filter[i] * o_.repeat, nullptr, {}});
    expected_deliveries_ += per_filter[i] * o_.repeat;
  }
}

void Coordinator::create_bus() {
  remove_stale_buses();
  bus_name_ = o_.bus.empty() ? "replay-" + std::to_string(getpid()) : o_.bus;
  if (shm_exists(bus_name_)) {
    if (!o_.bus.empty()) {
      throw Failure("bus '" + bus_name_ + "' exists already; a replay needs a fresh bus: " +
                    "choose another --bus, or remove /dev/shm/ipcbus." + bus_name_);
    }
    (void)ipcbus::Bus::destroy(bus_name_);  // left by a dead run that had our pid
  }
  ipcbus::OpenOptions open_options;
  open_options.name = bus_name_;
  open_options.config = config_;
  auto opened = ipcbus::Bus::open(open_options);
  if (!opened) {
    throw Failure("cannot create bus '" + bus_name_ + "': " + opened.error().message);
  }
  remover_.arm(bus_name_);
  bus_.emplace(std::move(opened.value()));
  control_.emplace(bus_->publisher());
  control_->set_block_timeout(o_.block_timeout);
}

void Coordinator::set_up_signals_and_progress() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
    sigaddset(&set, s);
  }
  if (const int rc = pthread_sigmask(SIG_BLOCK, &set, &child_mask_); rc != 0) {
    throw std::system_error(rc, std::generic_category(), "pthread_sigmask");
  }
  signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "signalfd");
  }
  signal(SIGPIPE, SIG_IGN);  // a child that died must not kill us through its stdin

  const std::size_t bytes = o_.publishers * kProgressStride;
  progress_fd_ = memfd_create("ipcbus-replay-progress", MFD_CLOEXEC);
  if (progress_fd_ < 0 || ftruncate(progress_fd_, static_cast<off_t>(bytes)) != 0) {
    throw std::system_error(errno, std::generic_category(), "memfd for progress");
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, progress_fd_, 0);
  if (p == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(), "mmap of progress");
  }
  progress_ = static_cast<std::uint64_t*>(p);
  progress_bytes_ = bytes;
  stderr_is_tty_ = isatty(STDERR_FILENO) == 1;
}

void Coordinator::start_listeners() {
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    ListenerRow& row = rows_[i];
    const std::vector<std::string> args = {
        exe_,
        "--role=listener",
        "--bus=" + bus_name_,
        "--filter=" + row.filter,
        std::string("--wait=") + ipcbus::wait_strategy_name(o_.wait),
        "--expect=" + std::to_string(row.expected),
    };
    row.child = &children_.spawn("listener " + std::to_string(i) + " (" + row.filter + ")", args,
                                 false, -1, child_mask_);
    listeners_.push_back(row.child);
  }
  wait_for(listeners_, "ready", false);
}

void Coordinator::start_publishers() {
  for (std::uint32_t i = 0; i < o_.publishers; ++i) {
    const std::vector<std::string> args = {
        exe_,
        "--role=publisher",
        "--bus=" + bus_name_,
        "--input=" + o_.input,
        "--index=" + std::to_string(i),
        "--publishers=" + std::to_string(o_.publishers),
        "--repeat=" + std::to_string(o_.repeat),
        "--block-timeout-ms=" + std::to_string(o_.block_timeout.count()),
        "--progress-fd=" + std::to_string(progress_fd_),
    };
    publishers_.push_back(
        &children_.spawn("publisher " + std::to_string(i), args, true, progress_fd_, child_mask_));
  }
  wait_for(publishers_, "ready", false);
}

void Coordinator::go() {
  go_at_ = Clock::now();
  progress_on_ = true;
  next_progress_ = go_at_;
  for (Child* p : publishers_) {
    static constexpr char kGo[] = "go\n";
    if (write(p->in, kGo, sizeof kGo - 1) != static_cast<ssize_t>(sizeof kGo - 1)) {
      throw Failure(p->what +
                    " did not take its start signal: " + std::generic_category().message(errno));
    }
    close(p->in);
    p->in = -1;
  }
}

void Coordinator::publish_control() {
  // Every publisher has exited, so each of its events is in the rings before
  // this one: a listener that sees it has seen everything.
  const ipcbus::PublishResult r = control_->publish(kControlTopic, std::string_view("done"));
  if (r.delivered != listeners_.size()) {
    throw Failure("the control event reached " + std::to_string(r.delivered) + " of " +
                  std::to_string(listeners_.size()) +
                  " listeners (status: " + ipcbus::publish_status_name(r.status) + ")");
  }
}

const std::string* Coordinator::line_with(const Child& c, const std::string& word) {
  for (const std::string& l : c.lines) {
    if (l == word || l.starts_with(word + " ")) {
      return &l;
    }
  }
  return nullptr;
}

nlohmann::json Coordinator::report_of(const Child& c) {
  const std::string* line = line_with(c, "report");
  if (line == nullptr) {
    throw Failure(c.what + " sent no report");
  }
  try {
    return nlohmann::json::parse(line->substr(7));
  } catch (const nlohmann::json::exception& e) {
    throw Failure(c.what + " sent a report that is not JSON: " + e.what());
  }
}

void Coordinator::check_children() {
  for (const Child& c : children_.all()) {
    if (!c.running && !c.ended_well()) {
      throw Failure(c.what + " " + c.how_it_ended());
    }
  }
}

void Coordinator::wait_for(const std::vector<Child*>& group, const std::string& word,
                           bool and_exit) {
  for (;;) {
    check_children();
    bool all = true;
    for (const Child* c : group) {
      const bool has = line_with(*c, word) != nullptr;
      if (!has && !c->running && c->out < 0) {
        throw Failure(c->what + " " + c->how_it_ended() + " before it said '" + word + "'");
      }
      all = all && has && (!and_exit || !c->running);
    }
    if (all) {
      return;
    }
    if (Clock::now() >= deadline_) {
      throw Failure("watchdog: the run took longer than " + std::to_string(o_.watchdog.count()) +
                    " s; every child is killed");
    }
    pump(progress_on_ ? 50 : 250);
    if (progress_on_ && Clock::now() >= next_progress_) {
      print_progress(false);
      next_progress_ += stderr_is_tty_ ? std::chrono::milliseconds(250) : std::chrono::seconds(1);
    }
  }
}

void Coordinator::pump(int timeout_ms) {
  std::vector<pollfd> fds;
  std::vector<Child*> owners;
  fds.push_back({signal_fd_, POLLIN, 0});
  owners.push_back(nullptr);
  for (Child& c : children_.all()) {
    if (c.out >= 0) {
      fds.push_back({c.out, POLLIN, 0});
      owners.push_back(&c);
    }
  }
  const int n = poll(fds.data(), fds.size(), timeout_ms);
  if (n < 0 && errno != EINTR) {
    throw std::system_error(errno, std::generic_category(), "poll");
  }
  if (n > 0) {
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents != 0) {
        children_.read_available(*owners[i]);
      }
    }
    if (fds[0].revents != 0) {
      signalfd_siginfo info[8];
      ssize_t got = 0;
      int stop_signal = 0;
      while ((got = read(signal_fd_, info, sizeof info)) > 0) {
        for (std::size_t k = 0; k < static_cast<std::size_t>(got) / sizeof info[0]; ++k) {
          if (info[k].ssi_signo != SIGCHLD) {
            stop_signal = static_cast<int>(info[k].ssi_signo);
          }
        }
      }
      if (stop_signal != 0) {
        throw Interrupted{stop_signal};
      }
    }
  }
  children_.reap();
}

std::uint64_t Coordinator::published_so_far() const {
  std::uint64_t sum = 0;
  for (std::uint32_t i = 0; i < o_.publishers; ++i) {
    // relaxed: a gauge written by the publishers with relaxed stores; the
    // exact counts come in their reports.
    sum += std::atomic_ref<std::uint64_t>(progress_[i * kProgressStride / 8])
               .load(std::memory_order_relaxed);
  }
  return sum;
}

void Coordinator::print_progress(bool final_line) {
  const std::uint64_t published = published_so_far();
  // Data events received: live listeners from their counters (which include
  // the control event, once), finished ones from their reports.
  std::uint64_t received = 0;
  for (const ipcbus::ListenerInfo& l : bus_->inspect().listeners) {
    if (l.state == ipcbus::ListenerState::kActive) {
      received += l.counters.received;
    }
  }
  for (const Child* c : listeners_) {
    if (line_with(*c, "report") != nullptr) {
      received += report_of(*c).at("received").get<std::uint64_t>();
    }
  }
  // The counters of a listener that took the control event count it too.
  received = std::min(received, expected_deliveries_);
  const double secs = std::chrono::duration<double>(Clock::now() - go_at_).count();
  const double pct =
      total_events_ == 0 ? 100.0 : 100.0 * static_cast<double>(published) / total_events_;
  std::fprintf(stderr,
               "%spublished %" PRIu64 "/%" PRIu64 " events (%.0f%%), received %" PRIu64 "/%" PRIu64
               ", %.1f s%s",
               stderr_is_tty_ ? "\r" : "", published, total_events_, pct, received,
               expected_deliveries_, secs,
               !stderr_is_tty_ ? "\n"
               : final_line    ? "\033[K\n"
                               : "\033[K");
  std::fflush(stderr);
}

// Prints the table and the verdict; returns whether every check passed.
bool Coordinator::print_results() {
  std::vector<std::string> failures;
  nlohmann::json pubs = nlohmann::json::array();
  std::uint64_t published = 0;
  std::uint64_t pool_waits = 0;
  for (const Child* p : publishers_) {
    nlohmann::json r = report_of(*p);
    published += r.at("published").get<std::uint64_t>();
    pool_waits += r.at("pool_waits").get<std::uint64_t>();
    if (r.at("errors").get<std::uint64_t>() != 0) {
      failures.push_back(p->what + ": " + r.at("errors").dump() +
                         " publish errors, first: " + r.at("first_error").get<std::string>());
    }
    if (r.at("timed_out").get<std::uint64_t>() != 0) {
      failures.push_back(p->what + ": " + r.at("timed_out").dump() +
                         " publishes timed out on a full ring");
    }
    pubs.push_back(std::move(r));
  }
  if (published != total_events_) {
    failures.push_back("publishers published " + std::to_string(published) + " events, not " +
                       std::to_string(total_events_));
  }

  std::size_t width = 6;
  for (const ListenerRow& row : rows_) {
    width = std::max(width, row.filter.size());
  }
  std::printf("%-*s %10s %10s %6s %6s %10s %10s %10s\n", static_cast<int>(width), "FILTER",
              "EXPECTED", "RECEIVED", "DROPS", "ORDER", "p50 us", "p99 us", "max us");
  std::uint64_t deliveries = 0;
  nlohmann::json ls = nlohmann::json::array();
  for (ListenerRow& row : rows_) {
    row.report = report_of(*row.child);
    const nlohmann::json& r = row.report;
    const auto received = r.at("received").get<std::uint64_t>();
    const auto drops = r.at("drops").get<std::uint64_t>();
    const auto order = r.at("order_violations").get<std::uint64_t>();
    const auto corrupt = r.at("corrupt").get<std::uint64_t>();
    const bool any = r.at("latency_samples").get<std::uint64_t>() != 0;
    deliveries += received;
    std::printf("%-*s %10" PRIu64 " %10" PRIu64 " %6" PRIu64 " %6s %10s %10s %10s\n",
                static_cast<int>(width), row.filter.c_str(), row.expected, received, drops,
                order == 0 ? "ok" : std::to_string(order).c_str(),
                any ? micros(r.at("p50_ns").get<std::uint64_t>()).c_str() : "-",
                any ? micros(r.at("p99_ns").get<std::uint64_t>()).c_str() : "-",
                any ? micros(r.at("max_ns").get<std::uint64_t>()).c_str() : "-");
    if (received != row.expected) {
      failures.push_back("listener '" + row.filter + "' received " + std::to_string(received) +
                         " events, expected exactly " + std::to_string(row.expected));
    }
    if (drops != 0) {
      failures.push_back("listener '" + row.filter + "' lost " + std::to_string(drops) +
                         " events (dropped or timed out)");
    }
    if (order != 0) {
      failures.push_back("listener '" + row.filter + "' saw " + std::to_string(order) +
                         " events out of per-publisher order");
    }
    if (corrupt != 0) {
      failures.push_back("listener '" + row.filter + "' got " + std::to_string(corrupt) +
                         " events whose topic does not fit their payload or its filter");
    }
    nlohmann::json entry = r;
    entry["expected"] = row.expected;
    ls.push_back(std::move(entry));
  }

  const double wall = std::chrono::duration<double>(done_at_ - go_at_).count();
  const double rate = wall > 0 ? static_cast<double>(published) / wall : 0.0;
  const double delivery_rate = wall > 0 ? static_cast<double>(deliveries) / wall : 0.0;
  std::printf("\nevents published: %s (%s lines x %u); deliveries: %s\n",
              with_commas(published).c_str(), with_commas(lines_).c_str(), o_.repeat,
              with_commas(deliveries).c_str());
  std::printf("wall time: %.3f s (start signal to last listener report)\n", wall);
  std::printf("throughput: %s events/s published, %s deliveries/s\n",
              with_commas(static_cast<std::uint64_t>(std::llround(rate))).c_str(),
              with_commas(static_cast<std::uint64_t>(std::llround(delivery_rate))).c_str());
  if (pool_waits != 0) {
    std::printf("publishers waited %s times for a free chunk\n", with_commas(pool_waits).c_str());
  }
  if (failures.empty()) {
    std::printf(
        "OK: every listener received exactly the expected events, in order, with no "
        "drops\n");
  } else {
    std::printf("FAILED:\n");
    for (const std::string& f : failures) {
      std::printf("  - %s\n", f.c_str());
    }
  }
  std::fflush(stdout);

  if (!o_.json.empty()) {
    const nlohmann::json doc = {
        {"input", o_.input},        {"bus", bus_name_},
        {"lines", lines_},          {"distinct_topics", distinct_topics_},
        {"repeat", o_.repeat},      {"wait", ipcbus::wait_strategy_name(o_.wait)},
        {"overflow", "block"},      {"events_published", published},
        {"deliveries", deliveries}, {"wall_s", wall},
        {"events_per_s", rate},     {"deliveries_per_s", delivery_rate},
        {"ok", failures.empty()},   {"failures", failures},
        {"publishers", pubs},       {"listeners", ls},
    };
    std::ofstream out(o_.json);
    out << doc.dump(2) << '\n';
    if (!out) {
      std::fprintf(stderr, "ipcbus-replay: cannot write %s\n", o_.json.c_str());
      return false;
    }
  }
  return failures.empty();
}

int Coordinator::run() {
  deadline_ = started_ + o_.watchdog;
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  exe_ = n > 0 ? std::string(path, static_cast<std::size_t>(n)) : "ipcbus-replay";

  prepare_expectations();
  set_up_signals_and_progress();  // before the bus exists: a signal now must not leak it
  create_bus();
  std::printf(
      "ipcbus-replay: %s: %s lines, %s distinct topics, x%u = %s events; %u publishers, "
      "%zu listeners (overflow block, wait %s); bus %s\n",
      o_.input.c_str(), with_commas(lines_).c_str(), with_commas(distinct_topics_).c_str(),
      o_.repeat, with_commas(total_events_).c_str(), o_.publishers, rows_.size(),
      ipcbus::wait_strategy_name(o_.wait), bus_name_.c_str());
  std::fflush(stdout);

  start_listeners();
  start_publishers();
  go();
  wait_for(publishers_, "report", true);
  publish_control();
  wait_for(listeners_, "report", true);
  done_at_ = Clock::now();
  print_progress(true);
  return print_results() ? 0 : 1;
}

}  // namespace

int run_coordinator(const CoordinatorOptions& options) {
  try {
    Coordinator c(options);
    return c.run();
  } catch (const Interrupted& i) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): strsignal's buffer; this process has one thread
    const char* signal_name = strsignal(i.signo);
    std::fprintf(stderr, "%sipcbus-replay: interrupted by %s; children killed, bus removed\n",
                 isatty(STDERR_FILENO) == 1 ? "\n" : "", signal_name);
    return 128 + i.signo;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%sipcbus-replay: FAILED: %s\n", isatty(STDERR_FILENO) == 1 ? "\n" : "",
                 e.what());
    return 1;
  }
}

}  // namespace replay
