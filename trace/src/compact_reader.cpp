// The version-2 reader: walks the compact chunks from the layout's compact_offset while they are
// whole (a chunk whose checksum fails is skipped and counted as torn when a whole chunk follows
// it; at the end of the chunks it is a seal cut by a kill, whose raw chunk is still in the ring),
// then reads the raw chunks not sealed yet with the version-1 reader, so that every verdict on a
// raw slot (torn, abandoned, hole, unused end) is version 1's.
#include "compact_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gpumem/trace/compact.h"
#include "gpumem/trace/format_v2.h"
#include "decode_ahead.h"
#include "read_ahead.h"

namespace gpumem::trace {
namespace {

constexpr size_t kMaxBatch = 256;
constexpr size_t kCopyBytes = 64 * 1024;  // raw chunks pass through this much at a time
static_assert(kCopyBytes >= kHeaderSize && kCopyBytes % kRecordSize == 0);

// A chunk header read alone: sane (ok when the chunk has no body, short_ otherwise).
bool header_ok(compact::ChunkCheck c) {
  return c == compact::ChunkCheck::ok || c == compact::ChunkCheck::short_;
}

class CompactFileReader final : public Reader {
 public:
  CompactFileReader(int fd, std::string path, uint64_t size, std::unique_ptr<Header> header,
                    CompactLayout layout, uint64_t skip, bool hold, bool follow)
      : fd_(fd),
        path_(std::move(path)),
        file_size_(size),
        header_(std::move(header)),
        layout_(layout),
        skip_(skip),
        hold_(hold),
        follow_(follow) {
    bounded_ = layout.max_bytes != 0 && bounded_layout(layout, &bounds_);
    rewind();
  }
  ~CompactFileReader() override {
    ahead_.reset();  // its thread reads fd_
    raw_.reset();
    if (mem_ >= 0) ::close(mem_);
    ::close(fd_);
  }

  const Header& header() const override { return *header_; }
  const std::string& path() const override { return path_; }
  uint64_t file_size() const override { return file_size_; }

  const DroppedSpan* dropped() const override { return has_digest_ ? &dropped_ : nullptr; }

  const ReadStats& stats() const override {
    totals();
    // A follower's counts are this look's (follow_on): less what was read again to skip it.
    stats_.records -= base_.records;
    stats_.torn -= base_.torn;
    stats_.abandoned -= base_.abandoned;
    return stats_;
  }

  // stats() without the base taken off.
  const ReadStats& totals() const {
    stats_.records = records_;
    stats_.torn = torn_;
    stats_.abandoned = 0;
    stats_.dropped = header_->records_dropped;
    std::string reason;
    auto add = [&](const std::string& r) {
      if (!r.empty()) reason += (reason.empty() ? "" : "; ") + r;
    };
    if (header_->records_dropped > 0 && bounded_)
      add(std::to_string(header_->records_dropped) +
          " record(s) dropped by the writer: the trace could not stay within GPUMEM_TRACE_MAX "
          "(more allocations live across its dropped middle than an eighth of the bound holds) "
          "or could not grow (disk full); raise GPUMEM_TRACE_MAX or free disk space, then run "
          "again");
    else if (header_->records_dropped > 0)
      add(std::to_string(header_->records_dropped) +
          " record(s) dropped by the writer: the trace file could not grow (disk full or "
          "file-size limit); free disk space or set GPUMEM_TRACE to a larger volume, then run "
          "again");
    if ((header_->flags & kHeaderClosed) == 0)
      add("not closed cleanly (process killed or crashed?)");
    else if (header_->end_offset > file_size_)
      add("file is shorter than its header says (cut after it was written?)");
    if (damaged_chunks_ > 0)
      add(std::to_string(damaged_chunks_) + " damaged compact chunk(s) skipped");
    if (raw_ != nullptr) {
      const ReadStats& r = raw_->stats();
      stats_.records += r.records;
      stats_.torn += r.torn;
      stats_.abandoned = r.abandoned;
      if (r.torn > 0) add(std::to_string(r.torn) + " torn record slot(s) skipped");
      if (r.reason.find("read error") != std::string::npos) add("read error in the raw chunks");
    }
    if (raw_cut_) add("file ends inside its raw chunks (cut short?)");
    if (torn_ > 0 && raw_ == nullptr) add(std::to_string(torn_) + " record(s) skipped");
    stats_.truncated = !reason.empty();
    stats_.reason = std::move(reason);
    stats_.bytes_read = offset_;
    stats_.dropped_span = dropped();
    return stats_;
  }

  void rewind() override {
    offset_ = layout_.compact_offset;
    chunks_ = 0;
    damaged_chunks_ = 0;
    torn_ = 0;
    records_ = 0;
    delivered_ = 0;
    at_ = 0;
    chunk_.records.clear();
    in_chunks_ = true;
    raw_.reset();
    raw_cut_ = false;
    part_ = Part::head;
    ahead_.reset();
    if (bounded_) find_digest();
    skip(skip_);
  }

  // follow_on (follow.h). The records a look read from raw chunks may be sealed into compact
  // chunks by now: go back to the first compact chunk not read and pass over those records again
  // (at most the raw ring's, not the whole trace). A bounded trace's window turns and its digest
  // changes: the caller opens it again.
  bool follow_on(bool hold) {
    Header now;
    struct stat st;
    if (bounded_ ||
        read_at(fd_, reinterpret_cast<char*>(&now), sizeof now, 0) !=
            static_cast<ssize_t>(sizeof now) ||
        std::memcmp(now.magic, kMagic, sizeof kMagic) != 0 || now.version != kVersionCompact ||
        ::fstat(fd_, &st) != 0)
      return false;
    make_header_safe(&now);
    const CompactLayout l = compact_layout(now);
    if (l.chunk_slots != layout_.chunk_slots || l.ring_chunks != layout_.ring_chunks ||
        l.compact_offset != layout_.compact_offset || l.max_bytes != 0)
      return false;
    *header_ = now;
    file_size_ = static_cast<uint64_t>(st.st_size);
    hold_ = hold;
    const uint64_t again = in_chunks_ ? 0 : delivered_ - delivered_at_raw_;
    delivered_ -= again;
    in_chunks_ = true;
    raw_.reset();
    raw_cut_ = false;
    at_ = 0;
    chunk_.records.clear();
    skip(again);
    return true;
  }

  bool next(Event* ev) override {
    while (in_chunks_) {
      if (at_ < chunk_.records.size()) {
        ev->rec = chunk_.records[at_];
        ev->payload = chunk_.payload(at_);
        ++at_;
        ++records_;
        ++delivered_;
        return true;
      }
      if (!load_chunk()) start_raw();
    }
    if (raw_ == nullptr || !raw_->next(ev)) return look_over();
    ++delivered_;
    return true;
  }

  bool next_batch(Batch* batch) override {
    if (in_chunks_ && at_ < chunk_.records.size()) {
      size_t n = 0;
      if (chunk_.payloads.empty())  // no blob in the chunk: the rest of it in one batch
        n = chunk_.records.size() - at_;
      else
        while (at_ + n < chunk_.records.size() && n < kMaxBatch && chunk_.payload(at_ + n).empty())
          ++n;
      if (n > 0) {
        *batch = {chunk_.records.data() + at_, n, {}};
        at_ += n;
        records_ += n;
        delivered_ += n;
        return true;
      }
    }
    if (!in_chunks_ && raw_ != nullptr) {
      if (!raw_->next_batch(batch)) return look_over();
      delivered_ += batch->count;
      return true;
    }
    if (!next(&batch_event_)) return false;
    *batch = {&batch_event_.rec, 1, batch_event_.payload};
    return true;
  }

  uint64_t resume_offset() const { return kHeaderSize + delivered_ * kRecordSize; }

 private:
  // Nothing more to read in this look. A follower's buffers go back to the heap until the next
  // look, which reads again (follow_on): top's followers, read one after another, then share
  // one set of buffers' memory (the raw part's reader gives its own back as well).
  bool look_over() {
    if (follow_) {
      chunk_ = compact::DecodedChunk{};
      body_ = std::vector<uint8_t>{};
      copy_ = std::vector<char>{};
    }
    return false;
  }

  // Passes over `n` records; the counts a look reports start after them.
  void skip(uint64_t n) {
    Event ev;
    for (uint64_t i = 0; i < n && next(&ev); ++i) {
    }
    base_ = totals();
  }

  // The next compact chunk into chunk_; false at the end of the chunks.
  bool load_chunk() {
    at_ = 0;
    chunk_.records.clear();
    if (part_ == Part::head && !load_head_chunk()) {
      if (!bounded_) return false;
      // The head is over: the digest's records, then the window from where the digest says.
      part_ = Part::window;
      offset_ = bounds_.window_begin;
      if (has_digest_) {
        chunks_ = dropped_.next_chunk;
        offset_ = digest_window_at_;
        if (load_digest_chunk()) return true;
      }
    }
    return part_ == Part::window ? load_window_chunk() : true;
  }

  // A bounded trace's window: the framed chunk whose index is chunks_, at offset_ or, when the
  // circle went round, at the window's beginning. Anything else ends the chunks (the next one was
  // being written when the process died, or the window holds nothing newer).
  bool load_window_chunk() {
    for (int tries = 0; tries < 2; ++tries) {
      WindowFrame frame;
      const uint64_t at = offset_;
      const bool whole =
          at + sizeof frame + compact::kChunkHeaderBytes <= bounds_.window_end &&
          read_at(fd_, reinterpret_cast<char*>(&frame), sizeof frame, at) ==
              static_cast<ssize_t>(sizeof frame) &&
          frame.magic == kWindowMagic && frame.index == chunks_;
      if (!whole) {
        if (at == bounds_.window_begin) return false;
        offset_ = bounds_.window_begin;
        continue;
      }
      uint8_t head[compact::kChunkHeaderBytes];
      compact::ChunkInfo info;
      if (read_at(fd_, reinterpret_cast<char*>(head), sizeof head, at + sizeof frame) !=
              static_cast<ssize_t>(sizeof head) ||
          !header_ok(compact::check_chunk(head, sizeof head, &info)) ||
          at + sizeof frame + info.size() > std::min(bounds_.window_end, file_size_))
        return false;
      body_.resize(info.size());
      if (read_at(fd_, reinterpret_cast<char*>(body_.data()), body_.size(), at + sizeof frame) !=
              static_cast<ssize_t>(body_.size()) ||
          !compact::decode_chunk(body_.data(), body_.size(), &chunk_, &info))
        return false;  // a seal cut by a kill: its raw chunk is still in the ring
      offset_ = at + sizeof frame + info.size();
      ++chunks_;
      return true;
    }
    return false;
  }

  // The digest slot with the highest generation whose frame and chunk are whole: its frame and
  // rows into dropped_ (its chunk is decoded when the reader gets there).
  void find_digest() {
    has_digest_ = false;
    dropped_ = DroppedSpan{};
    uint64_t best = 0;
    for (uint64_t slot : bounds_.digest_at) {
      DigestFrame f;
      if (read_at(fd_, reinterpret_cast<char*>(&f), sizeof f, slot) != static_cast<ssize_t>(sizeof f) ||
          f.magic != kDigestMagic || f.generation <= best || f.frame_bytes < sizeof f ||
          f.frame_bytes > bounds_.digest_bytes ||
          f.frame_bytes != sizeof f + uint64_t{f.rows} * sizeof(OmittedRow) ||
          f.next_chunk < f.first_chunk || f.window_at < bounds_.window_begin ||
          f.window_at >= bounds_.window_end)
        continue;
      std::vector<uint8_t> frame(f.frame_bytes);
      if (read_at(fd_, reinterpret_cast<char*>(frame.data()), frame.size(), slot) !=
              static_cast<ssize_t>(frame.size()) ||
          compact::checksum(f.frame_bytes, f.rows, frame.data() + 16, frame.size() - 16) !=
              f.checksum)
        continue;
      uint8_t head[compact::kChunkHeaderBytes];
      compact::ChunkInfo info;
      if (read_at(fd_, reinterpret_cast<char*>(head), sizeof head, slot + f.frame_bytes) !=
              static_cast<ssize_t>(sizeof head) ||
          !header_ok(compact::check_chunk(head, sizeof head, &info)) ||
          f.frame_bytes + info.size() > bounds_.digest_bytes || info.records != f.kept)
        continue;
      best = f.generation;
      has_digest_ = true;
      digest_at_ = slot + f.frame_bytes;
      digest_size_ = info.size();
      digest_window_at_ = f.window_at;
      dropped_ = DroppedSpan{};
      dropped_.records = f.records;
      dropped_.kept = f.kept;
      dropped_.first_t_ns = f.first_t_ns;
      dropped_.last_t_ns = f.last_t_ns;
      dropped_.first_chunk = f.first_chunk;
      dropped_.next_chunk = f.next_chunk;
      for (uint32_t i = 0; i < f.rows; ++i) {
        OmittedRow row;
        std::memcpy(&row, frame.data() + sizeof f + i * sizeof row, sizeof row);
        dropped_.omitted.push_back({row.device, row.op, row.aux, row.count, row.bytes});
      }
    }
  }

  bool load_digest_chunk() {
    compact::ChunkInfo info;
    body_.resize(digest_size_);
    if (read_at(fd_, reinterpret_cast<char*>(body_.data()), body_.size(), digest_at_) !=
            static_cast<ssize_t>(body_.size()) ||
        !compact::decode_chunk(body_.data(), body_.size(), &chunk_, &info)) {
      ++damaged_chunks_;  // checked at open, changed since: the writer is still running
      return false;
    }
    return !chunk_.records.empty();
  }

  // The next chunk of the head (all of an unbounded trace's chunks): decoded ahead on a thread
  // when there is much to read and no writer to follow, here otherwise, and here wherever the
  // thread stops (the end, a damaged chunk: decode_ahead.h).
  bool load_head_chunk() {
    const uint64_t limit = bounded_ ? std::min(file_size_, bounds_.head_end) : file_size_;
    if (ahead_ == nullptr && !follow_ && limit > offset_ && limit - offset_ >= DecodeAhead::kMinBytes)
      ahead_ = std::make_unique<DecodeAhead>(fd_, offset_, limit);
    if (ahead_ != nullptr) {
      if (ahead_->next(&chunk_, &offset_)) {
        ++chunks_;
        return true;
      }
      ahead_.reset();
    }
    const ChunkStep step = next_compact_chunk(fd_, offset_, limit, &body_, &chunk_);
    offset_ = step.next_offset;
    chunks_ += step.chunks;
    damaged_chunks_ += step.damaged;
    torn_ += step.torn;
    return step.found;
  }

  // The raw chunks not sealed: chunks_ .. chunks_ + ring_chunks - 2, in order, as a version-1
  // file in memory, read by the version-1 reader.
  void start_raw() {
    in_chunks_ = false;
    delivered_at_raw_ = delivered_;
    const uint64_t chunk_bytes = uint64_t{layout_.chunk_slots} * kRecordSize;
    // The raw chunks are copied into a memory file (kept from one look to the next, as is the
    // small buffer they pass through: a follower does this at every refresh) after room for a
    // version-1 header, written last.
    if (mem_ < 0) mem_ = memfd_create("gpumem-raw-chunks", MFD_CLOEXEC);
    if (mem_ < 0) return;
    copy_.resize(kCopyBytes);
    uint64_t size = kHeaderSize;  // bytes of the memory file so far
    bool at_start = chunks_ > 0;  // still passing over a sealed blob's payload slots (below)
    for (uint64_t k = chunks_; k + 1 < chunks_ + layout_.ring_chunks; ++k) {
      const uint64_t at = kHeaderSize + (k % layout_.ring_chunks) * chunk_bytes;
      bool last_zero = false, short_read = false;
      for (uint64_t done = 0; done < chunk_bytes && !short_read;) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(kCopyBytes, chunk_bytes - done));
        const ssize_t got = read_at(fd_, copy_.data(), want, at + done);
        size_t len = got > 0 ? static_cast<size_t>(got) - static_cast<size_t>(got) % kRecordSize : 0;
        if (got < static_cast<ssize_t>(want)) {
          // A closed file may end before its ring (nothing unsealed); an unclosed one was cut.
          if ((header_->flags & kHeaderClosed) == 0 && at < file_size_) raw_cut_ = true;
          short_read = true;
        }
        done += want;
        // Payload slots of the last sealed chunk's blob, spilt into the first raw chunk: not ours.
        size_t from = 0;
        while (at_start && from + kRecordSize <= len) {
          uint32_t commit;
          std::memcpy(&commit, copy_.data() + from + offsetof(Record, commit), sizeof commit);
          if (commit != kContinuation) at_start = false;
          else from += kRecordSize;
        }
        if (!write_all(copy_.data() + from, len - from, size)) return;
        size += len - from;
        static constexpr Record kZero{};
        last_zero = len >= kRecordSize &&
                    std::memcmp(copy_.data() + len - kRecordSize, &kZero, kRecordSize) == 0;
      }
      if (short_read) break;
      // Following (hold): reading stops at the first slot not committed, so a chunk whose last
      // slot is still zero ends what this look can read; the chunks after it are not copied.
      if (hold_ && last_zero) break;
    }
    auto h = std::make_unique<Header>(*header_);
    h->version = kVersion;
    h->flags |= kHeaderClosed;
    h->end_offset = size;
    h->records_dropped = 0;
    std::memset(copy_.data(), 0, kHeaderSize);
    std::memcpy(copy_.data(), h.get(), sizeof(Header));
    // Its pages stay allocated for the next look; only a shorter file is cut.
    if (!write_all(copy_.data(), kHeaderSize, 0) ||
        ::ftruncate(mem_, static_cast<off_t>(size)) != 0)
      return;
    const int fd = ::fcntl(mem_, F_DUPFD_CLOEXEC, 0);  // the version-1 reader closes its own
    if (fd < 0) return;
    raw_ = open_raw_records(fd, path_, size, std::move(h), hold_);
  }

  bool write_all(const char* data, size_t len, uint64_t offset) {
    for (size_t done = 0; done < len;) {
      const ssize_t w = ::pwrite(mem_, data + done, len - done, static_cast<off_t>(offset + done));
      if (w <= 0) return false;
      done += static_cast<size_t>(w);
    }
    return true;
  }

  enum class Part { head, window };
  Part part_ = Part::head;
  bool bounded_ = false;
  BoundedLayout bounds_{};
  bool has_digest_ = false;
  uint64_t digest_at_ = 0, digest_size_ = 0, digest_window_at_ = 0;
  DroppedSpan dropped_;
  int fd_;
  std::string path_;
  uint64_t file_size_;
  std::unique_ptr<Header> header_;
  CompactLayout layout_;
  uint64_t skip_;
  bool hold_;
  bool follow_;  // a follower of a live trace (follow.h): no thread decodes ahead
  std::unique_ptr<DecodeAhead> ahead_;
  uint64_t offset_ = 0;  // next compact chunk
  uint64_t chunks_ = 0;  // compact chunks passed (whole or damaged): the first raw chunk's index
  uint64_t damaged_chunks_ = 0;
  uint64_t torn_ = 0;
  uint64_t records_ = 0;    // from compact chunks
  uint64_t delivered_ = 0;  // all records handed out, skipped ones included
  uint64_t delivered_at_raw_ = 0;  // delivered_ when the raw chunks were reached
  ReadStats base_;                 // totals() when the look began (follow_on)
  bool in_chunks_ = true;
  bool raw_cut_ = false;
  size_t at_ = 0;
  compact::DecodedChunk chunk_;
  std::vector<uint8_t> body_;
  std::unique_ptr<Reader> raw_;
  std::vector<char> copy_;  // start_raw()'s buffer, kCopyBytes
  int mem_ = -1;            // start_raw(): the raw chunks as a version-1 file in memory
  Event batch_event_;
  mutable ReadStats stats_;
};

}  // namespace

std::unique_ptr<Reader> open_compact(int fd, const std::string& path, uint64_t size,
                                     std::unique_ptr<Header> header, uint64_t skip, bool hold,
                                     bool follow, std::string* error) {
  const CompactLayout l = compact_layout(*header);
  const uint64_t ring = uint64_t{l.chunk_slots} * l.ring_chunks * kRecordSize;
  if (l.chunk_slots == 0 || l.chunk_slots > (1u << 20) || l.ring_chunks < 3 ||
      l.ring_chunks > 1024 || ring > (1ull << 30) || l.compact_offset != kHeaderSize + ring) {
    ::close(fd);
    *error = "'" + path + "' has a damaged compact layout (chunk_slots " +
             std::to_string(l.chunk_slots) + ", ring_chunks " + std::to_string(l.ring_chunks) +
             ", compact_offset " + std::to_string(l.compact_offset) +
             "): the file cannot be read";
    return nullptr;
  }
  BoundedLayout bounds;
  if (l.max_bytes != 0 && !bounded_layout(l, &bounds)) {
    ::close(fd);
    *error = "'" + path + "' has a damaged bounded layout (max_bytes " +
             std::to_string(l.max_bytes) + ", at least " + std::to_string(kMinTraceMax) +
             " expected): the file cannot be read";
    return nullptr;
  }
  return std::make_unique<CompactFileReader>(fd, path, size, std::move(header), l, skip, hold,
                                             follow);
}

bool compact_follow_on(Reader& reader, bool hold) {
  auto* c = dynamic_cast<CompactFileReader*>(&reader);
  return c != nullptr && c->follow_on(hold);
}

uint64_t compact_resume_offset(const Reader& reader) {
  const auto* c = dynamic_cast<const CompactFileReader*>(&reader);
  return c != nullptr ? c->resume_offset() : 0;
}

}  // namespace gpumem::trace
