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

/// The directory as given, without a trailing separator or dot segments: segment paths are made
/// from it, and retention compares the names it lists with those of open segments.
std::string normal_directory(const std::string& d) {
  std::filesystem::path p = std::filesystem::path(d).lexically_normal();
  if (!p.has_filename() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
  return p.string();
}
// A segment made and not yet taken by a writer: "<run>-ahead-<n>.tjs.ahead". Readers and
// retention see only ".tjs": a segment gets its name, with its place in the run's order, when a
// writer takes it, so that names sort as the run used its segments.
constexpr char ahead_suffix[] = ".ahead";

}  // namespace

journal::journal(const journal_config& cfg, std::vector<journal_type> types)
    : cfg_(cfg), types_(std::move(types)), dir_(normal_directory(cfg.directory)) {
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
  // Segments a killed process made and never wrote (the lock says none is being made now).
  const std::string part_tail = std::string(fmt::file_suffix) + ahead_suffix;
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() > part_tail.size() &&
        n.compare(n.size() - part_tail.size(), part_tail.size(), part_tail) == 0) {
      std::error_code rec;
      std::filesystem::remove(it->path(), rec);
    }
  }

  run_id_ = fresh_run_id();
  seed_ = crc32c(0, &run_id_, sizeof run_id_);
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

  if (cfg_.durability != durability::process) {
    dir_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd_ < 0) {
      const int e = errno;
      ::close(lock_fd_);
      throw std::runtime_error("tachyon::journal: cannot open the directory '" + dir_ +
                               "' to sync it: " + errno_text(e));
    }
  }

  apply_retention();  // a restart honours the limits at once
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    if (dir_fd_ >= 0) ::close(dir_fd_);
    ::close(lock_fd_);  // the directory is not left locked by a bus that never started
    throw;
  }
}

journal::~journal() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The bus has stopped: no writer runs. Each current segment is closed (its unused tail given
  // back); a prepared one that was never taken holds no record and goes.
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
    for (journal_segment* s : w->retiring_) close_segment(s);
    w->retiring_.clear();
  }
  for (journal_segment* s : rolled_) close_segment(s);
  rolled_.clear();
  const std::vector<journal_segment*> unused = open_;  // made, never handed to a writer
  for (journal_segment* s : unused) remove_segment(s);
  apply_retention();
  if (dir_fd_ >= 0) ::close(dir_fd_);
  ::close(lock_fd_);  // lets the lock go
}

void journal::fail(std::string what) noexcept {
  try {
    std::lock_guard lock(mutex_);
    last_error_ = std::move(what);
  } catch (...) {  // the reason is lost; the count that goes with it is not
  }
}

void journal::sync_directory() noexcept {
  if (dir_fd_ < 0) return;
  if (::fsync(dir_fd_) == 0) {
    syncs_.fetch_add(1, std::memory_order_relaxed);
  } else {
    sync_failures_.fetch_add(1, std::memory_order_relaxed);
    fail("tachyon::journal: fsync of the directory '" + dir_ + "': " + errno_text(errno));
  }
}

void journal::populate(journal_segment* s, bool in_use) noexcept {
  s->populated = true;
#if defined(MADV_POPULATE_WRITE)
  if (::madvise(s->base, s->size, MADV_POPULATE_WRITE) == 0) return;
#endif
  // Without MADV_POPULATE_WRITE (Linux < 5.14): a write per page, only where no writer writes.
  if (!in_use)
    for (std::size_t off = 0; off < s->size; off += page_bytes)
      reinterpret_cast<volatile unsigned char*>(s->base)[off] = 0;
}

journal_segment* journal::make_segment(std::uint32_t writer, bool populate_now) noexcept {
  std::uint64_t made;
  {
    std::lock_guard lock(mutex_);
    made = next_made_++;
  }
  char name[96];
  std::snprintf(name, sizeof name, "/%020" PRIu64 "-%016" PRIx64 "-ahead-%08" PRIu64 "%s%s",
                run_start_ns_, run_id_, made, fmt::file_suffix, ahead_suffix);
  std::string part;
  try {
    part = dir_ + name;
  } catch (...) {
    return nullptr;
  }
  const std::string& path = part;
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
  std::memcpy(base, header_template_.data(), header_used_);
  fmt::segment_header h;
  std::memcpy(&h, base, sizeof h);
  h.created_ns = wall_ns();
  h.created_ticks = clock::now();
  h.ordinal = UINT64_MAX;  // set when a writer takes it
  h.writer = writer;
  h.writer_segment = UINT32_MAX;  // set when a writer takes it
  h.first_number = UINT64_MAX;    // likewise
  std::memcpy(base, &h, sizeof h);
  set_header_checksum(base);
  journal_segment* s = new (std::nothrow) journal_segment;
  if (s == nullptr) {
    ::munmap(base, size);
    ::close(fd);
    ::unlink(part.c_str());
    return nullptr;
  }
  s->fd = fd;
  s->base = base;
  s->size = size;
  // The pages, mapped writable now (by tachyon-journal), so that the writer takes no page
  // fault on them; a thread's first segment, made on its first publish, leaves that to it.
  if (populate_now) populate(s, false);
  try {
    s->path = part;
    std::lock_guard lock(mutex_);
    open_.push_back(s);
  } catch (...) {
    ::munmap(base, size);
    ::close(fd);
    ::unlink(part.c_str());
    delete s;
    return nullptr;
  }
  segments_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

bool journal::take_segment(journal_writer& w, journal_segment* s) noexcept {
  std::unique_lock lock(mutex_);  // tachyon-journal reads current_ and end_ to sync
  const std::uint64_t ordinal = next_ordinal_;
  char name[80];
  std::snprintf(name, sizeof name, "/%020" PRIu64 "-%016" PRIx64 "-%08" PRIu64 "%s", run_start_ns_,
                run_id_, ordinal, fmt::file_suffix);
  std::string path;
  try {
    path = dir_ + name;
  } catch (...) {
    return false;
  }
  fmt::segment_header h;
  std::memcpy(&h, s->base, sizeof h);
  h.writer = w.id_;
  h.writer_segment = w.segments_taken_;
  h.first_number = w.number_;
  h.ordinal = ordinal;
  std::memcpy(s->base, &h, sizeof h);
  set_header_checksum(s->base);
  // Its name now, under the lock: retention, which lists the directory and then reads the open
  // set under this lock, sees it either not yet named or named and taken.
  if (::rename(s->path.c_str(), path.c_str()) != 0) {
    const int e = errno;
    lock.unlock();
    fail("tachyon::journal: cannot name segment '" + path + "': " + errno_text(e));
    return false;
  }
  ++next_ordinal_;
  ++w.segments_taken_;
  s->path.swap(path);
  s->taken = true;
  std::byte* const start = s->base + fmt::header_room;
  w.current_ = s;
  w.tail_ = start;
  w.room_ = s->size - fmt::header_room;
  w.end_.store(start, std::memory_order_relaxed);  // under the lock, as current_ and synced_
  w.synced_ = start;
  lock.unlock();
  // Under every_event, a record synced before its publish returns must be findable after a
  // power loss: its segment's header and name go to the disk first.
  if (cfg_.durability == durability::every_event) {
    if (::msync(s->base, page_bytes, MS_SYNC) == 0) {
      syncs_.fetch_add(1, std::memory_order_relaxed);
    } else {
      sync_failures_.fetch_add(1, std::memory_order_relaxed);
      fail("tachyon::journal: msync of the header of '" + s->path + "': " + errno_text(errno));
    }
  }
  sync_directory();
  return true;
}

void journal::close_segment(journal_segment* s) noexcept {
  // The unused tail goes back to the filesystem as a hole: the file keeps its size, so that a
  // reader that has it mapped never faults past a new end (a truncate would SIGBUS it).
  const std::size_t keep =
      (std::max(s->used, fmt::header_room) + page_bytes - 1) & ~(page_bytes - 1);
  if (keep < s->size &&
      ::fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(keep),
                  static_cast<off_t>(s->size - keep)) != 0 &&
      errno != EOPNOTSUPP)
    fail("tachyon::journal: cannot free the unused tail of '" + s->path +
         "': " + errno_text(errno));
  if (cfg_.durability != durability::process) {
    if (::fdatasync(s->fd) == 0) {
      syncs_.fetch_add(1, std::memory_order_relaxed);
    } else {
      sync_failures_.fetch_add(1, std::memory_order_relaxed);
      fail("tachyon::journal: fdatasync of '" + s->path + "': " + errno_text(errno));
    }
  }
  ::munmap(s->base, s->size);
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
    struct file {
      std::string name;
      std::uint64_t bytes;  // on the disk: a closed segment's unused tail is a hole
      bool open;
      bool ahead;  // made ahead and not yet taken by a writer: holds nothing, is not counted
    };
    std::vector<file> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      if (e.path().extension() != fmt::file_suffix) continue;
      struct stat st {};
      if (::stat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      files.push_back({e.path().filename().string(), static_cast<std::uint64_t>(st.st_blocks) * 512,
                       false, false});
    }
    // Read after the listing: a segment is open before it has its name (make_segment), so a
    // listed segment of this run that is being written is in the set now.
    {
      std::lock_guard lock(mutex_);
      for (const journal_segment* s : open_) {
        const std::string n = std::filesystem::path(s->path).filename().string();
        for (file& f : files)
          if (f.name == n) {
            f.open = true;
            f.ahead = !s->taken;
          }
      }
    }
    // Names sort by the run's start, then the segment's ordinal: oldest first.
    std::sort(files.begin(), files.end(),
              [](const file& a, const file& b) { return a.name < b.name; });
    std::uint64_t count = 0;
    std::uint64_t bytes = 0;
    for (const file& f : files)
      if (!f.ahead) {
        ++count;
        bytes += f.bytes;
      }
    for (const file& f : files) {
      const bool over = (cfg_.retain_segments != 0 && count > cfg_.retain_segments) ||
                        (cfg_.retain_bytes != 0 && bytes > cfg_.retain_bytes);
      if (!over) break;
      if (f.open) continue;
      const std::string path = dir_ + "/" + f.name;
      if (::unlink(path.c_str()) != 0) {
        fail("tachyon::journal: retention cannot delete '" + path + "': " + errno_text(errno));
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
  // Not populated here: a thread's first journaled publish (or outcome) makes its segment, and
  // tachyon-journal maps its pages while the thread writes the first records.
  journal_segment* s = make_segment(id, false);
  if (s == nullptr) return nullptr;
  journal_writer* w = new (std::nothrow) journal_writer(*this, id, seed_);
  if (w == nullptr) {
    remove_segment(s);
    return nullptr;
  }
  w->every_event_ = cfg_.durability == durability::every_event;
  if (!take_segment(*w, s)) {
    remove_segment(s);
    delete w;
    return nullptr;
  }
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
  if (next == nullptr) {
    // tachyon-journal has not caught up: made here, on this thread, its pages touched too (a
    // pause now rather than a fault on every page after; only a writer outrunning the
    // preparation, about 1 GB/s, comes here).
    next = j.make_segment(id_, true);
    if (next == nullptr) return false;
    j.made_inline_.fetch_add(1, std::memory_order_relaxed);
  }
  journal_segment* old = current_;
  const std::size_t used = static_cast<std::size_t>(tail_ - old->base);
  if (!j.take_segment(*this, next)) {
    j.remove_segment(next);
    return false;
  }
  old->used = used;
  j.wake_.notify_one();  // a next one to prepare, and maybe this one's pages to map
  if (claims_ != 0) {    // a claim in it is still being filled: it is handed over when it ends
    try {
      retiring_.push_back(old);
      return true;
    } catch (...) {  // no memory to keep it: the claim in it is padded, then it is handed over
    }
  }
  j.hand_over(old);
  return true;
}

void journal_writer::retire() noexcept {
  for (journal_segment* s : retiring_) owner_.hand_over(s);
  retiring_.clear();
}

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
  fill(at, length, 0, meta{}, 0);
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
  w->fill(at, sizeof(fmt::record_header), static_cast<std::uint8_t>(o), m, clock::now());
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
    // First the sync, so that making segments never delays it. Each writer's current segment is
    // synced from where the last sync ended to its last commit: only written pages, never the
    // touched-ahead ones beyond, which a sync would write (zeros) and clean, making the writer
    // fault on each of them again. Segments rolled off are synced whole when closed (below).
    if (syncing && std::chrono::steady_clock::now() >= next_sync) {
      for (std::size_t i = 0; i < writers_.size(); ++i) {
        journal_writer* w = writers_[i].get();
        journal_segment* seg = w->current_;
        std::byte* const from = w->synced_;
        std::byte* const to = w->end_.load(std::memory_order_acquire);  // see commit()
        if (seg == nullptr || to <= from) continue;
        lk.unlock();
        // Only this thread unmaps a segment (closing it) while the bus runs: seg stays mapped.
        const auto first =
            reinterpret_cast<std::uintptr_t>(from) & ~(std::uintptr_t{page_bytes} - 1);
        const bool ok = ::msync(reinterpret_cast<void*>(first),
                                reinterpret_cast<std::uintptr_t>(to) - first, MS_SYNC) == 0;
        const int e = errno;
        lk.lock();
        if (ok) {
          syncs_.fetch_add(1, std::memory_order_relaxed);
          if (w->current_ == seg) w->synced_ = to;
        } else {
          sync_failures_.fetch_add(1, std::memory_order_relaxed);
          lk.unlock();
          fail("tachyon::journal: msync of '" + seg->path + "': " + errno_text(e));
          lk.lock();
        }
      }
      next_sync = std::chrono::steady_clock::now() + interval;
    }
    // A segment a writer made itself (its first, or one it needed before this thread had one
    // ready) gets its pages mapped now, while the writer writes its first records.
    for (std::size_t i = 0; i < writers_.size() && !stopping_; ++i) {
      journal_segment* seg = writers_[i]->current_;
      if (seg == nullptr || seg->populated) continue;
      lk.unlock();
      populate(seg, true);
      lk.lock();
    }
    // Each writer gets its next segment ready before it needs one.
    const bool may_prepare = std::chrono::steady_clock::now() >= retry_at;
    for (std::size_t i = 0; may_prepare && i < writers_.size() && !stopping_; ++i) {
      journal_writer* w = writers_[i].get();
      if (w->next_ != nullptr) continue;
      const std::uint32_t id = w->id_;
      lk.unlock();
      const std::uint64_t t0 = steady_now_ns();
      journal_segment* seg = make_segment(id, true);
      prepare_ns_.fetch_add(steady_now_ns() - t0, std::memory_order_relaxed);
      lk.lock();
      if (seg == nullptr) {
        retry_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
        break;
      }
      prepared_.fetch_add(1, std::memory_order_relaxed);
      w->next_ = seg;  // only this thread fills next_, and the writer only empties it
    }
    bool closed = false;
    while (!rolled_.empty()) {
      journal_segment* seg = rolled_.front();
      rolled_.pop_front();
      lk.unlock();
      close_segment(seg);
      closed = true;
      lk.lock();
    }
    if (closed) {
      lk.unlock();
      apply_retention();
      lk.lock();
    }
    if (stopping_) break;
    auto wake_at = syncing ? next_sync : std::chrono::steady_clock::now() + std::chrono::seconds(1);
    if (retry_at > std::chrono::steady_clock::now()) wake_at = std::min(wake_at, retry_at);
    wake_.wait_until(lk, wake_at, [&] {
      if (stopping_ || !rolled_.empty()) return true;
      if (std::any_of(writers_.begin(), writers_.end(), [](const auto& w) {
            return w->current_ != nullptr && !w->current_->populated;
          }))
        return true;
      if (std::chrono::steady_clock::now() < retry_at) return false;
      return std::any_of(writers_.begin(), writers_.end(),
                         [](const auto& w) { return w->next_ == nullptr; });
    });
  }
}

}  // namespace tachyon::detail
