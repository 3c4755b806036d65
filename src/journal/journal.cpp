// The journal's cold half: its directory and lock, segment files (made, handed over, closed,
// deleted), the tachyon-journal thread, and outcome records. The hot half (reserve, fill,
// commit) is inline in detail/journal/journal.hpp.
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <system_error>

#include <tachyon/detail/context/thread_context.hpp>
#include <tachyon/detail/journal/journal.hpp>

namespace tachyon::detail {

namespace fmt = journal_format;

namespace {

std::uint64_t wall_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::uint64_t steady_now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::string errno_text(int e) {
  return std::string(std::strerror(e)) + " (errno " + std::to_string(e) + ")";
}

std::uint64_t fresh_run_id() {
  std::random_device rd;
  std::uint64_t id = 0;
  while (id == 0)
    id = (static_cast<std::uint64_t>(rd()) << 32 | rd()) ^ (wall_ns() * 0x9E3779B97F4A7C15ULL);
  return id;
}

void set_header_checksum(std::byte* base) noexcept {
  fmt::segment_header h;
  std::memcpy(&h, base, sizeof h);
  h.checksum = 0;
  std::memcpy(base, &h, sizeof h);
  const std::uint32_t c = crc32c(0, base, h.header_used);
  std::memcpy(base + offsetof(fmt::segment_header, checksum), &c, sizeof c);
}

constexpr std::size_t page_bytes = 4096;
constexpr char part_suffix[] = ".part";  // a segment being made: "<name>.tjs.part"

}  // namespace

journal::journal(const journal_config& cfg, std::vector<journal_type> types)
    : cfg_(cfg), types_(std::move(types)), dir_(cfg.directory) {
  std::error_code ec;
  std::filesystem::create_directory(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_))
    throw std::runtime_error(
        "tachyon::journal: cannot use the directory '" + dir_ +
        "' (config::journal.directory): " + (ec ? ec.message() : std::string("not a directory")));
  const std::string lock_path = dir_ + "/.lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0)
    throw std::runtime_error("tachyon::journal: cannot open the lock file '" + lock_path +
                             "': " + errno_text(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(lock_fd_);
    throw std::runtime_error("tachyon::journal: the directory '" + dir_ +
                             "' is in use by another bus (its lock file '" + lock_path +
                             "' is held" + (e == EWOULDBLOCK ? "" : ": " + errno_text(e)) +
                             "); one bus at a time may write a journal directory");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) == 0) {
    [[maybe_unused]] const auto w = ::write(lock_fd_, pid.data(), pid.size());
  }
  // Segments a killed process was making (the lock says none is being made now).
  const std::string part_tail = std::string(fmt::file_suffix) + part_suffix;
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() > part_tail.size() &&
        n.compare(n.size() - part_tail.size(), part_tail.size(), part_tail) == 0) {
      std::error_code rec;
      std::filesystem::remove(it->path(), rec);
    }
  }

  run_id_ = fresh_run_id();
  run_start_ns_ = wall_ns();
  ns_per_tick_ = clock::ns_per_tick();

  // The header every segment of this run starts with: the fixed part, then the type table.
  std::vector<std::byte> h(sizeof(fmt::segment_header));
  std::uint32_t count = 0;
  for (std::size_t i = 0; i < types_.size(); ++i) {
    const journal_type& t = types_[i];
    if (!t.journaled) continue;
    fmt::type_entry e{};
    e.index = static_cast<std::uint16_t>(i);
    e.kind = t.kind;
    e.version = t.version;
    e.oldest = t.oldest;
    e.size = t.size;
    e.align = t.align;
    e.name_length = static_cast<std::uint32_t>(t.name.size());
    e.fingerprint = t.fingerprint;
    const std::size_t at = h.size();
    h.resize(at + sizeof e + fmt::padded(t.name.size()));
    std::memcpy(h.data() + at, &e, sizeof e);
    std::memcpy(h.data() + at + sizeof e, t.name.data(), t.name.size());
    ++count;
  }
  if (h.size() > fmt::header_room) {
    ::close(lock_fd_);
    throw std::runtime_error("tachyon::journal: the journaled types' table takes " +
                             std::to_string(h.size()) + " bytes; a segment header holds " +
                             std::to_string(fmt::header_room) +
                             " (shorter codec names, or fewer journaled types)");
  }
  fmt::segment_header sh{};
  sh.magic = fmt::magic;
  sh.format = fmt::version;
  sh.header_used = static_cast<std::uint32_t>(h.size());
  sh.run_id = run_id_;
  sh.run_start_ns = run_start_ns_;
  sh.ns_per_tick = ns_per_tick_;
  sh.segment_bytes = cfg_.segment_bytes;
  sh.pid = static_cast<std::uint32_t>(::getpid());
  sh.type_count = count;
  std::memcpy(h.data(), &sh, sizeof sh);
  header_template_ = std::move(h);
  header_used_ = header_template_.size();

  apply_retention();  // a restart honours the limits at once
  thread_ = std::thread([this] { run(); });
}

journal::~journal() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The bus has stopped: no writer runs. Each current segment is cut to its end; a prepared
  // one that was never taken holds no record and goes.
  for (auto& w : writers_) {
    if (w->current_ != nullptr) {
      w->current_->used = static_cast<std::size_t>(w->tail_ - w->current_->base);
      close_segment(w->current_);
      w->current_ = nullptr;
    }
    if (w->next_ != nullptr) {
      remove_segment(w->next_);
      w->next_ = nullptr;
    }
    if (w->retiring_ != nullptr) close_segment(std::exchange(w->retiring_, nullptr));
  }
  for (journal_segment* s : rolled_) close_segment(s);
  rolled_.clear();
  const std::vector<journal_segment*> unused = open_;  // made, never handed to a writer
  for (journal_segment* s : unused) remove_segment(s);
  apply_retention();
  ::close(lock_fd_);  // lets the lock go
}

void journal::fail(std::string what) noexcept {
  try {
    std::lock_guard lock(mutex_);
    last_error_ = std::move(what);
  } catch (...) {  // the reason is lost; the count that goes with it is not
  }
}

journal_segment* journal::make_segment(std::uint32_t writer) noexcept {
  std::uint64_t ordinal;
  {
    std::lock_guard lock(mutex_);
    ordinal = next_ordinal_++;
  }
  char name[80];
  std::snprintf(name, sizeof name, "/%020" PRIu64 "-%016" PRIx64 "-%08" PRIu64 "%s", run_start_ns_,
                run_id_, ordinal, fmt::file_suffix);
  // Made under a name readers and retention ignore, and renamed once its header is written:
  // a process killed while making it leaves no file under the segments' suffix that is not a
  // segment (the next bus on the directory removes the leftover).
  std::string path, part;
  try {
    path = dir_ + name;
    part = path + part_suffix;
  } catch (...) {
    return nullptr;
  }
  const int fd = ::open(part.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    fail("tachyon::journal: cannot create segment '" + path + "': " + errno_text(errno));
    return nullptr;
  }
  const std::size_t size = cfg_.segment_bytes;
  // Allocated now, so that a full disk (or a file size limit) is an error here, never a SIGBUS
  // when a page of the mapping is first written.
  if (const int e = ::posix_fallocate(fd, 0, static_cast<off_t>(size)); e != 0) {
    ::close(fd);
    ::unlink(part.c_str());
    fail("tachyon::journal: cannot allocate " + std::to_string(size) + " bytes for segment '" +
         path + "': " + errno_text(e));
    return nullptr;
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    ::close(fd);
    ::unlink(part.c_str());
    fail("tachyon::journal: cannot map segment '" + path + "': " + errno_text(e));
    return nullptr;
  }
  auto* base = static_cast<std::byte*>(p);
  // The pages, mapped writable now, so that the writer never takes a page fault on them.
#if defined(MADV_POPULATE_WRITE)
  if (::madvise(base, size, MADV_POPULATE_WRITE) != 0)
#endif
  {
    for (std::size_t off = 0; off < size; off += page_bytes)
      reinterpret_cast<volatile unsigned char*>(base)[off] = 0;
  }
  std::memcpy(base, header_template_.data(), header_used_);
  fmt::segment_header h;
  std::memcpy(&h, base, sizeof h);
  h.created_ns = wall_ns();
  h.created_ticks = clock::now();
  h.ordinal = ordinal;
  h.writer = writer;
  h.writer_segment = UINT32_MAX;  // set when a writer takes it
  h.first_number = UINT64_MAX;    // likewise
  std::memcpy(base, &h, sizeof h);
  set_header_checksum(base);
  if (::rename(part.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::munmap(base, size);
    ::close(fd);
    ::unlink(part.c_str());
    fail("tachyon::journal: cannot rename '" + part + "' to '" + path + "': " + errno_text(e));
    return nullptr;
  }

  journal_segment* s = new (std::nothrow) journal_segment;
  if (s == nullptr) {
    ::munmap(base, size);
    ::close(fd);
    ::unlink(path.c_str());
    return nullptr;
  }
  s->fd = fd;
  s->base = base;
  s->size = size;
  s->ordinal = ordinal;
  s->path = std::move(path);
  try {
    std::lock_guard lock(mutex_);
    open_.push_back(s);
  } catch (...) {
    remove_segment(s);
    return nullptr;
  }
  segments_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

void journal::take_segment(journal_writer& w, journal_segment* s) noexcept {
  fmt::segment_header h;
  std::memcpy(&h, s->base, sizeof h);
  h.writer = w.id_;
  h.writer_segment = w.segments_taken_++;
  h.first_number = w.number_;
  std::memcpy(s->base, &h, sizeof h);
  set_header_checksum(s->base);
  w.current_ = s;
  w.tail_ = s->base + fmt::header_room;
  w.room_ = s->size - fmt::header_room;
}

void journal::close_segment(journal_segment* s) noexcept {
  if (cfg_.durability != durability::process) {
    if (::fdatasync(s->fd) == 0) {
      syncs_.fetch_add(1, std::memory_order_relaxed);
    } else {
      sync_failures_.fetch_add(1, std::memory_order_relaxed);
      fail("tachyon::journal: fdatasync of '" + s->path + "': " + errno_text(errno));
    }
  }
  ::munmap(s->base, s->size);
  // A closed segment takes only the room its records use.
  if (::ftruncate(s->fd, static_cast<off_t>(std::max(s->used, fmt::header_room))) != 0)
    fail("tachyon::journal: cannot cut '" + s->path + "' to its end: " + errno_text(errno));
  ::close(s->fd);
  {
    std::lock_guard lock(mutex_);
    open_.erase(std::remove(open_.begin(), open_.end(), s), open_.end());
  }
  delete s;
}

void journal::remove_segment(journal_segment* s) noexcept {
  ::munmap(s->base, s->size);
  ::close(s->fd);
  ::unlink(s->path.c_str());
  {
    std::lock_guard lock(mutex_);
    open_.erase(std::remove(open_.begin(), open_.end(), s), open_.end());
  }
  delete s;
}

void journal::apply_retention() noexcept {
  if (cfg_.retain_segments == 0 && cfg_.retain_bytes == 0) return;
  try {
    std::vector<std::string> open_paths;
    {
      std::lock_guard lock(mutex_);
      for (const journal_segment* s : open_) open_paths.push_back(s->path);
    }
    struct file {
      std::string path;
      std::uint64_t bytes;
      bool open;
    };
    std::vector<file> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      const std::string p = e.path().string();
      if (e.path().extension() != fmt::file_suffix) continue;
      std::error_code sec;
      const auto bytes = e.file_size(sec);
      if (sec) continue;
      const bool is_open = std::find(open_paths.begin(), open_paths.end(), p) != open_paths.end();
      files.push_back({p, bytes, is_open});
    }
    // Names sort by the run's start, then the segment's ordinal: oldest first.
    std::sort(files.begin(), files.end(),
              [](const file& a, const file& b) { return a.path < b.path; });
    std::uint64_t count = files.size();
    std::uint64_t bytes = 0;
    for (const file& f : files) bytes += f.bytes;
    for (const file& f : files) {
      const bool over = (cfg_.retain_segments != 0 && count > cfg_.retain_segments) ||
                        (cfg_.retain_bytes != 0 && bytes > cfg_.retain_bytes);
      if (!over) break;
      if (f.open) continue;
      if (::unlink(f.path.c_str()) != 0) {
        fail("tachyon::journal: retention cannot delete '" + f.path + "': " + errno_text(errno));
        continue;
      }
      --count;
      bytes -= f.bytes;
      deleted_.fetch_add(1, std::memory_order_relaxed);
    }
  } catch (...) {
    fail("tachyon::journal: retention failed reading '" + dir_ + "'");
  }
}

journal_writer* journal::writer_for(thread_context& ctx) noexcept {
  if (ctx.journal != nullptr) return ctx.journal;
  const auto id = static_cast<std::uint32_t>(ctx.next_sequence & 0xffff);
  journal_segment* s = make_segment(id);
  if (s == nullptr) return nullptr;
  journal_writer* w = new (std::nothrow) journal_writer(*this, id);
  if (w == nullptr) {
    remove_segment(s);
    return nullptr;
  }
  w->every_event_ = cfg_.durability == durability::every_event;
  take_segment(*w, s);
  try {
    std::lock_guard lock(mutex_);
    writers_.emplace_back(w);
  } catch (...) {
    remove_segment(s);
    delete w;
    return nullptr;
  }
  ctx.journal = w;
  wake_.notify_one();  // tachyon-journal prepares its next segment
  return w;
}

bool journal_writer::roll(std::size_t bytes) noexcept {
  journal& j = owner_;
  if (bytes > j.cfg_.segment_bytes - journal_format::header_room) {
    j.fail("tachyon::journal: a record of " + std::to_string(bytes) +
           " bytes does not fit a segment's " +
           std::to_string(j.cfg_.segment_bytes - journal_format::header_room) +
           " bytes of room (config::journal.segment_bytes = " +
           std::to_string(j.cfg_.segment_bytes) + ")");
    return false;
  }
  journal_segment* next;
  {
    std::lock_guard lock(j.mutex_);
    next = std::exchange(next_, nullptr);
  }
  if (next == nullptr) {  // tachyon-journal has not caught up: made here, on this thread
    next = j.make_segment(id_);
    if (next == nullptr) return false;
    j.made_inline_.fetch_add(1, std::memory_order_relaxed);
  }
  journal_segment* old = current_;
  old->used = static_cast<std::size_t>(tail_ - old->base);
  j.take_segment(*this, next);
  if (claims_ != 0) {  // a claim in it is still being filled: it is handed over when it ends
    retiring_ = old;
    return true;
  }
  j.hand_over(old);
  return true;
}

void journal_writer::retire() noexcept { owner_.hand_over(std::exchange(retiring_, nullptr)); }

void journal::hand_over(journal_segment* s) noexcept {
  try {
    std::lock_guard lock(mutex_);
    rolled_.push_back(s);
  } catch (...) {  // cannot queue it: closed here
    close_segment(s);
    return;
  }
  wake_.notify_one();
}

void journal_writer::pad(std::byte* at, std::size_t length) noexcept {
  std::memset(at + sizeof(fmt::record_header), 0, length - sizeof(fmt::record_header));
  at[offsetof(fmt::record_header, kind)] = static_cast<std::byte>(fmt::padding);
  fill(at, length, 0, meta{}, 0, nullptr, 0);
  __atomic_store_n(reinterpret_cast<std::uint32_t*>(at), static_cast<std::uint32_t>(length),
                   __ATOMIC_RELEASE);
}

void journal_writer::sync_record(std::byte* at, std::size_t length) noexcept {
  const auto first = reinterpret_cast<std::uintptr_t>(at) & ~(std::uintptr_t{page_bytes} - 1);
  const auto last = reinterpret_cast<std::uintptr_t>(at) + length;
  if (::msync(reinterpret_cast<void*>(first), last - first, MS_SYNC) == 0) {
    owner_.syncs_.fetch_add(1, std::memory_order_relaxed);
  } else {
    owner_.sync_failures_.fetch_add(1, std::memory_order_relaxed);
    owner_.fail("tachyon::journal: msync of '" + current_->path + "': " + errno_text(errno));
  }
}

void journal::settled(thread_context& ctx, const meta& m, tachyon::outcome o) noexcept {
  if (!journals(m.type_index)) return;
  journal_writer* w = writer_for(ctx);
  std::byte* at = w != nullptr ? w->reserve(sizeof(fmt::record_header), fmt::outcome) : nullptr;
  if (at == nullptr) {
    outcomes_lost_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  w->fill(at, sizeof(fmt::record_header), static_cast<std::uint8_t>(o), m, clock::now(), nullptr,
          0);
  w->commit(at, sizeof(fmt::record_header), true);
}

journal_stats journal::stats() const {
  journal_stats s;
  s.enabled = true;
  std::lock_guard lock(mutex_);
  for (const auto& w : writers_) {
    s.records += w->records_.load(std::memory_order_relaxed);
    s.outcomes += w->outcomes_.load(std::memory_order_relaxed);
    s.bytes += w->bytes_.load(std::memory_order_relaxed);
  }
  s.writers = static_cast<std::uint32_t>(writers_.size());
  s.refused = refused_.load(std::memory_order_relaxed);
  s.outcomes_lost = outcomes_lost_.load(std::memory_order_relaxed);
  s.segments = segments_.load(std::memory_order_relaxed);
  s.prepared = prepared_.load(std::memory_order_relaxed);
  s.made_inline = made_inline_.load(std::memory_order_relaxed);
  s.deleted = deleted_.load(std::memory_order_relaxed);
  s.syncs = syncs_.load(std::memory_order_relaxed);
  s.sync_failures = sync_failures_.load(std::memory_order_relaxed);
  s.prepare_ns = prepare_ns_.load(std::memory_order_relaxed);
  s.segment_bytes = cfg_.segment_bytes;
  s.last_error = last_error_;
  return s;
}

void journal::run() {
  pthread_setname_np(pthread_self(), "tachyon-journal");
  const bool syncing = cfg_.durability == durability::interval;
  const auto interval = std::chrono::milliseconds(cfg_.sync_interval);
  auto next_sync = std::chrono::steady_clock::now() + interval;
  auto retry_at = std::chrono::steady_clock::time_point{};  // after a failed preparation
  std::unique_lock lk(mutex_);
  for (;;) {
    // Each writer gets a segment ready before it needs one.
    const bool may_prepare = std::chrono::steady_clock::now() >= retry_at;
    for (std::size_t i = 0; may_prepare && i < writers_.size() && !stopping_; ++i) {
      journal_writer* w = writers_[i].get();
      if (w->next_ != nullptr) continue;
      const std::uint32_t id = w->id_;
      lk.unlock();
      const std::uint64_t t0 = steady_now_ns();
      journal_segment* s = make_segment(id);
      prepare_ns_.fetch_add(steady_now_ns() - t0, std::memory_order_relaxed);
      lk.lock();
      if (s == nullptr) {
        retry_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
        break;
      }
      prepared_.fetch_add(1, std::memory_order_relaxed);
      if (w->next_ == nullptr) {
        w->next_ = s;
      } else {  // cannot happen while only this thread fills next_; kept safe
        lk.unlock();
        remove_segment(s);
        lk.lock();
      }
    }
    bool closed = false;
    while (!rolled_.empty()) {
      journal_segment* s = rolled_.front();
      rolled_.pop_front();
      lk.unlock();
      close_segment(s);
      closed = true;
      lk.lock();
    }
    if (closed) {
      lk.unlock();
      apply_retention();
      lk.lock();
    }
    if (syncing && std::chrono::steady_clock::now() >= next_sync) {
      std::vector<std::pair<int, std::string>> fds;
      for (const journal_segment* s : open_) fds.emplace_back(s->fd, s->path);
      lk.unlock();
      // Only this thread closes segments (and the destructor, after joining it): the fds stay
      // open while it syncs them.
      for (const auto& [fd, path] : fds) {
        if (::fdatasync(fd) == 0) {
          syncs_.fetch_add(1, std::memory_order_relaxed);
        } else {
          sync_failures_.fetch_add(1, std::memory_order_relaxed);
          fail("tachyon::journal: fdatasync of '" + path + "': " + errno_text(errno));
        }
      }
      next_sync = std::chrono::steady_clock::now() + interval;
      lk.lock();
    }
    if (stopping_) break;
    auto wake_at = syncing ? next_sync : std::chrono::steady_clock::now() + std::chrono::seconds(1);
    if (retry_at > std::chrono::steady_clock::now()) wake_at = std::min(wake_at, retry_at);
    wake_.wait_until(lk, wake_at, [&] {
      if (stopping_ || !rolled_.empty()) return true;
      if (std::chrono::steady_clock::now() < retry_at) return false;
      return std::any_of(writers_.begin(), writers_.end(),
                         [](const auto& w) { return w->next_ == nullptr; });
    });
  }
}

}  // namespace tachyon::detail
