// top.cpp: `ipcbus top`, a live view of a bus redrawn every interval with
// ncurses; q quits. With --once, or when standard output is not a terminal,
// it prints one frame as plain text (rates over one interval) and exits.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <thread>

#include "cli.hpp"
#include "top_frame.hpp"

// Last: curses defines macros (timeout, clear, erase, ...) that would rename
// identifiers in the headers above.
#include <curses.h>

namespace ipcbus::cli {

namespace {

// How often the terminal view looks for a key press while it waits.
inline constexpr int kKeyPollMs = 100;

struct TopOptions {
  std::string bus;
  double interval_s = 1.0;
  bool once = false;
};

Clock::duration interval_of(const TopOptions& o) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.interval_s));
}

// sleep_until_or_stop: false when a stop signal came first.
bool sleep_until_or_stop(Clock::time_point until) {
  while (Clock::now() < until) {
    if (stop_requested()) {
      return false;
    }
    std::this_thread::sleep_for(
        std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(kKeyPollMs)));
  }
  return !stop_requested();
}

int run_plain(const Bus& bus, const TopOptions& o) {
  const Snapshot before = take_snapshot(bus);
  if (!sleep_until_or_stop(before.at + interval_of(o))) {
    return kExitOk;
  }
  const Snapshot now = take_snapshot(bus);
  for (const FrameLine& line : build_frame(&before, now, o.interval_s)) {
    std::cout << line.text << '\n';
  }
  return kExitOk;
}

// Screen owns the curses session: endwin() runs on every way out, so that an
// exception never leaves the terminal in raw mode.
class Screen {
 public:
  Screen() {
    if (initscr() == nullptr) {
      throw CliError(kExitRuntime, "cannot start the terminal view (is TERM set?)");
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    wtimeout(stdscr, kKeyPollMs);
    if (has_colors()) {
      start_color();
      use_default_colors();
      init_pair(1, COLOR_RED, -1);
      init_pair(2, COLOR_CYAN, -1);
      colors_ = true;
    }
  }
  ~Screen() { endwin(); }
  Screen(const Screen&) = delete;
  Screen& operator=(const Screen&) = delete;

  void draw(const std::vector<FrameLine>& lines) {
    werase(stdscr);
    const int rows = LINES;
    const int cols = COLS;
    const int shown = static_cast<int>(std::min<std::size_t>(lines.size(), rows));
    for (int y = 0; y < shown; ++y) {
      const FrameLine& line = lines[static_cast<std::size_t>(y)];
      const bool cut = y == rows - 1 && lines.size() > static_cast<std::size_t>(rows);
      const std::string text =
          cut ? "... " + std::to_string(lines.size() - static_cast<std::size_t>(y)) +
                    " more lines: enlarge the terminal"
              : line.text;
      const attr_t attr = attribute(line.style);
      wattron(stdscr, attr);
      mvwaddnstr(stdscr, y, 0, text.c_str(), cols);
      wattroff(stdscr, attr);
    }
    wrefresh(stdscr);
  }

  // wait_key returns a key, or ERR after kKeyPollMs without one.
  int wait_key() { return wgetch(stdscr); }

 private:
  attr_t attribute(FrameLine::Style style) const {
    switch (style) {
      case FrameLine::Style::kTitle:
        return A_BOLD | (colors_ ? COLOR_PAIR(2) : 0);
      case FrameLine::Style::kHeading:
        return A_REVERSE;
      case FrameLine::Style::kAlert:
        return colors_ ? COLOR_PAIR(1) : A_BOLD;
      case FrameLine::Style::kNormal:
        break;
    }
    return A_NORMAL;
  }
  bool colors_ = false;
};

int run_screen(const Bus& bus, const TopOptions& o) {
  Screen screen;
  Snapshot before = take_snapshot(bus);
  std::vector<FrameLine> frame = build_frame(nullptr, before, o.interval_s);
  screen.draw(frame);
  auto next = before.at + interval_of(o);
  while (!stop_requested()) {
    const int key = screen.wait_key();
    if (key == 'q' || key == 'Q') {
      break;
    }
    if (key == KEY_RESIZE) {
      screen.draw(frame);
    }
    if (Clock::now() < next) {
      continue;
    }
    Snapshot now = take_snapshot(bus);
    frame = build_frame(&before, now, o.interval_s);
    screen.draw(frame);
    before = std::move(now);
    next += interval_of(o);
    if (next <= Clock::now()) {
      next = Clock::now() + interval_of(o);  // suspended: do not catch up
    }
  }
  return kExitOk;
}

int run_top(const TopOptions& o) {
  install_stop_handlers();
  const Bus bus = open_bus(o.bus, /*create=*/false);
  if (o.once || isatty(STDOUT_FILENO) == 0 || isatty(STDIN_FILENO) == 0) {
    return run_plain(bus, o);
  }
  return run_screen(bus, o);
}

}  // namespace

Command add_top_command(CLI::App& app) {
  auto o = std::make_shared<TopOptions>();
  CLI::App* cmd = app.add_subcommand("top", "Live view of a bus: rates, backlogs, drops, pools");
  cmd->footer(
      "Show the bus live, redrawn every --interval: per listener its receive rate,\n"
      "backlog, drops per second by reason (drop-newest, drop-oldest, block timeout),\n"
      "latency quantiles over the interval (listeners with a histogram), state and\n"
      "owner pid; pool use per size class; each live publisher's event and byte rate;\n"
      "the latest error-log entries. Rows of listeners that are behind or dropping,\n"
      "and of exhausted pools, are shown as alerts. q quits (so do SIGINT, SIGTERM).\n"
      "\n"
      "With --once, or when standard input or output is not a terminal, it waits one\n"
      "interval, prints one frame as plain text and exits. Does not create the bus.\n"
      "\n"
      "Examples:\n"
      "  ipcbus top --bus robot\n"
      "  ipcbus top --once > frame.txt");
  add_bus_option(*cmd, o->bus);
  cmd->add_option("-i,--interval", o->interval_s, "Seconds between frames")
      ->type_name("SECONDS")
      ->check(number_in(0.1, 3600.0).description(""))
      ->capture_default_str();
  cmd->add_flag("--once", o->once, "Print one frame as plain text and exit");
  return {cmd, [o] { return run_top(*o); }};
}

}  // namespace ipcbus::cli
