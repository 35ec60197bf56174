// The streaming trace reader: pread() into a few fixed 1 MiB chunks (read ahead on a thread,
// read_ahead.h), records handed out one at a time or in runs, so memory stays bounded whatever
// the trace size. Every field read from the file is checked before it is used: bad input is
// reported or skipped, never trusted.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include "gpumem/regular_file.h"
#include "gpumem/trace/follow.h"
#include "gpumem/trace/reader.h"
#include "compact_reader.h"
#include "gpumem/trace/format_v2.h"
#include "read_ahead.h"

namespace gpumem::trace {
namespace {

// A follower's one buffer (follow.h): 1024 slots, read again at each look from where it stopped.
constexpr size_t kFollowBytes = 64 * 1024;
constexpr size_t kMaxBatch = 256;            // 16 KiB: checked and then read while still in L1
constexpr uint64_t kMaxBlobSlots = 1 << 16;  // 3.9 MB payload; the writer never comes close

bool is_blob(uint16_t op) {
  return op == static_cast<uint16_t>(Op::string) || op == static_cast<uint16_t>(Op::stack);
}

bool all_zero(const Record& r) {
  static constexpr Record kZero{};
  return std::memcmp(&r, &kZero, sizeof(Record)) == 0;
}

template <size_t N>
void terminate_string(char (&s)[N]) {
  s[N - 1] = '\0';
}

class FileReader final : public Reader {
 public:
  // `start`: the slot reading begins at (open_from); `hold`: stop at an uncommitted slot;
  // `follow`: one small buffer, no read-ahead (follow.h).
  FileReader(int fd, std::string path, uint64_t size, std::unique_ptr<Header> header,
             uint64_t start = kHeaderSize, bool hold = false, bool follow = false)
      : fd_(fd),
        path_(std::move(path)),
        file_size_(size),
        header_(std::move(header)),
        start_(start),
        hold_(hold),
        follow_(follow),
        ahead_(fd, follow ? kFollowBytes : 0) {
    find_data_end();
    rewind();
  }
  ~FileReader() override {
    ahead_.stop();  // no read in flight on the descriptor once it is closed
    ::close(fd_);
  }

  const Header& header() const override { return *header_; }
  const std::string& path() const override { return path_; }
  uint64_t file_size() const override { return file_size_; }
  const ReadStats& stats() const override { return stats_; }

  void rewind() override {
    pos_ = start_;
    pending_zero_slots_ = 0;
    buffer_offset_ = 0;
    buffer_len_ = 0;
    in_abandoned_blob_ = false;
    stats_ = ReadStats{};
    stats_.dropped = header_->records_dropped;
    update_reason();
  }

  bool next_batch(Batch* batch) override {
    // A run of complete plain records already in the buffer, with no zero slots before it. Slots
    // start at multiples of kRecordSize from buffer_offset_ (refills start at a slot), so the
    // run is an array of Record.
    if (pending_zero_slots_ == 0 && pos_ >= buffer_offset_) {
      const uint64_t end = std::min(data_end_, buffer_offset_ + buffer_len_);
      const size_t available = end > pos_ ? (end - pos_) / kRecordSize : 0;
      const size_t limit = std::min(available, kMaxBatch);
      const Record* first = limit > 0 ? records_ + (pos_ - buffer_offset_) / kRecordSize : nullptr;
      size_t n = 0;
      while (n < limit && first[n].commit == kCommitted && !is_blob(first[n].op)) ++n;
      if (n > 0) {
        pos_ += n * kRecordSize;
        stats_.records += n;
        stats_.bytes_read = pos_;
        *batch = {first, n, {}};
        return true;
      }
    }
    // Anything else (a refill, a blob, torn or zero slots) goes the careful way, one record.
    if (!next(&batch_event_)) return false;
    *batch = {&batch_event_.rec, 1, batch_event_.payload};
    return true;
  }

  bool next(Event* ev) override {
    // Fast path, nearly every call: a complete non-blob record already in the buffer, with no
    // zero slots before it. Its commit word and op are checked in place and it is copied once.
    if (pending_zero_slots_ == 0 && pos_ >= buffer_offset_ && pos_ + kRecordSize <= data_end_ &&
        pos_ + kRecordSize <= buffer_offset_ + buffer_len_) {
      const char* slot = buffer_ + (pos_ - buffer_offset_);
      uint32_t commit;
      uint16_t op;
      std::memcpy(&commit, slot + offsetof(Record, commit), sizeof commit);
      std::memcpy(&op, slot + offsetof(Record, op), sizeof op);
      if (commit == kCommitted && !is_blob(op)) {
        std::memcpy(&ev->rec, slot, kRecordSize);
        ev->payload = {};
        pos_ += kRecordSize;
        ++stats_.records;
        stats_.bytes_read = pos_;
        return true;
      }
    }
    while (pos_ + kRecordSize <= data_end_) {
      Record rec;
      if (!copy_slot(pos_, &rec)) break;
      if (rec.commit == kAbandoned || (rec.commit == kContinuation && in_abandoned_blob_)) {
        // In flight at a clean exit (the call had not returned), with its blob payload if any.
        count_zero_slots_as_torn();
        in_abandoned_blob_ = true;
        ++stats_.abandoned;
        pos_ += kRecordSize;
        continue;
      }
      // Following a live trace: a slot not committed yet is a call still in flight; wait for it.
      if (hold_ && rec.commit != kCommitted) break;
      in_abandoned_blob_ = false;
      if (rec.commit == kCommitted) {
        count_zero_slots_as_torn();  // records follow: the zeros before them were holes
        if (is_blob(rec.op)) {
          if (!read_blob(rec)) {
            count_torn(1);  // a head without its payload: damaged, not a kill
            pos_ += kRecordSize;
            continue;
          }
          ev->payload = payload_;
        } else {
          ev->payload = {};
          pos_ += kRecordSize;
        }
        ev->rec = rec;
        ++stats_.records;
        stats_.bytes_read = pos_;
        return true;
      }
      if (rec.commit == 0 && all_zero(rec)) {
        ++pending_zero_slots_;  // unused space, unless a record follows
      } else {
        count_zero_slots_as_torn();
        count_torn(1);  // cut by a kill while being written, or an orphaned payload slot
      }
      pos_ += kRecordSize;
    }
    stats_.bytes_read = pos_;
    if (follow_) {  // this look is over: the next one reads again (follow_on), into a new buffer
      ahead_.release_direct();
      buffer_offset_ = buffer_len_ = 0;
      records_ = nullptr;
      buffer_ = nullptr;
    }
    return false;  // zero slots at the end are the unused end of the file, not torn
  }

  uint64_t resume_offset() const { return pos_ - pending_zero_slots_ * kRecordSize; }

  // follow_on (follow.h): the header and size as they are now, reading from resume_offset().
  bool follow_on(bool hold) {
    Header now;
    struct stat st;
    if (read_at(fd_, reinterpret_cast<char*>(&now), sizeof now, 0) !=
            static_cast<ssize_t>(sizeof now) ||
        std::memcmp(now.magic, kMagic, sizeof kMagic) != 0 || now.version != header_->version ||
        now.header_size != kHeaderSize || now.record_size != kRecordSize || ::fstat(fd_, &st) != 0)
      return false;
    make_header_safe(&now);
    *header_ = now;
    file_size_ = static_cast<uint64_t>(st.st_size);
    start_ = resume_offset();
    hold_ = hold;
    open_reasons_.clear();
    find_data_end();
    rewind();  // the buffer's bytes are from the last look: read again
    return true;
  }

 private:
  // Where the records end: the clean-close mark if it is sane, else the end of the file.
  void find_data_end() {
    if (header_->records_dropped > 0)
      open_reasons_.push_back(std::to_string(header_->records_dropped) +
                              " record(s) dropped by the writer: the trace file could not grow "
                              "(disk full, file-size limit, or its reserved address range "
                              "filled: the program's warning said which); free disk space or set "
                              "GPUMEM_TRACE to a larger volume, then run again");
    const bool closed = (header_->flags & kHeaderClosed) != 0;
    const uint64_t end = header_->end_offset;
    uint64_t limit = file_size_;
    if (!closed) {
      open_reasons_.push_back("not closed cleanly (process killed or crashed?)");
    } else if (end < kHeaderSize || (end - kHeaderSize) % kRecordSize != 0) {
      open_reasons_.push_back("header end mark is invalid (file damaged?); read to end of file");
    } else if (end > file_size_) {
      open_reasons_.push_back("file is shorter than its header says (cut after it was written?)");
    } else {
      limit = end;
    }
    if ((limit - kHeaderSize) % kRecordSize != 0)
      open_reasons_.push_back("file ends in the middle of a record");
    data_end_ = limit - (limit - kHeaderSize) % kRecordSize;
  }

  void update_reason() {
    std::string reason;
    for (const std::string& r : open_reasons_) reason += (reason.empty() ? "" : "; ") + r;
    if (stats_.torn > 0) {
      reason += reason.empty() ? "" : "; ";
      reason += std::to_string(stats_.torn) + " torn record slot(s) skipped";
    }
    stats_.truncated = !reason.empty();
    stats_.reason = std::move(reason);
  }

  void count_torn(uint64_t n) {
    if (n == 0) return;
    stats_.torn += n;
    update_reason();
  }
  void count_zero_slots_as_torn() {
    count_torn(pending_zero_slots_);
    pending_zero_slots_ = 0;
  }

  // Copies the slot at `offset` out of the buffer, refilling it when needed.
  bool copy_slot(uint64_t offset, Record* out) {
    if (offset < buffer_offset_ || offset + kRecordSize > buffer_offset_ + buffer_len_) {
      const uint64_t want = std::min<uint64_t>(ahead_.chunk_bytes(), data_end_ - offset);
      const ReadAhead::Chunk chunk = ahead_.get(offset, data_end_);  // usually read already
      records_ = chunk.data;
      buffer_ = reinterpret_cast<char*>(records_);
      const ssize_t got = chunk.got;
      const int err = chunk.error;
      buffer_offset_ = offset;
      buffer_len_ = got < 0 ? 0 : static_cast<uint64_t>(got);
      if (buffer_len_ < want) {  // the file shrank under us or cannot be read: stop there
        data_end_ = offset + buffer_len_ - buffer_len_ % kRecordSize;
        open_reasons_.push_back(got < 0 ? "read error: " + std::string(std::strerror(err))
                                        : "file became shorter while being read");
        update_reason();
      }
      if (offset + kRecordSize > buffer_offset_ + buffer_len_) return false;
    }
    std::memcpy(out, buffer_ + (offset - buffer_offset_), kRecordSize);
    return true;
  }

  // Gathers the payload of the blob whose head `rec` is at pos_; on success advances pos_ past
  // it. False when the head's sizes are impossible or a payload slot is missing.
  bool read_blob(const Record& rec) {
    const uint64_t slots = rec.address;
    if (slots > kMaxBlobSlots || rec.bytes > slots * kBlobBytesPerSlot ||
        (slots > 0 && rec.bytes <= (slots - 1) * kBlobBytesPerSlot) ||
        pos_ + (1 + slots) * kRecordSize > data_end_)
      return false;
    payload_.clear();
    for (uint64_t i = 1; i <= slots; ++i) {
      Record cont;
      if (!copy_slot(pos_ + i * kRecordSize, &cont) || cont.commit != kContinuation) return false;
      payload_.append(reinterpret_cast<const char*>(&cont), kBlobBytesPerSlot);
    }
    payload_.resize(rec.bytes);
    pos_ += (1 + slots) * kRecordSize;
    return true;
  }

  int fd_;
  std::string path_;
  uint64_t file_size_;
  std::unique_ptr<Header> header_;
  uint64_t start_;
  bool hold_;
  const bool follow_;  // a follower's reader (follow.h): its buffer lives for one look
  std::vector<std::string> open_reasons_;  // why the file is truncated, known before reading
  uint64_t data_end_ = kHeaderSize;        // records lie in [kHeaderSize, data_end_)
  uint64_t pos_ = kHeaderSize;
  uint64_t pending_zero_slots_ = 0;
  bool in_abandoned_blob_ = false;  // continuation slots after an abandoned slot are its payload
  // The chunk in use, owned by ahead_ (typed, so that runs of records in it are Record arrays).
  Record* records_ = nullptr;
  char* buffer_ = nullptr;      // the same bytes, for byte offsets
  uint64_t buffer_offset_ = 0;  // file offset of buffer_[0]
  uint64_t buffer_len_ = 0;
  std::string payload_;
  Event batch_event_;  // the one record next_batch() delivers from the careful path
  ReadStats stats_;
  ReadAhead ahead_;  // owns the buffers and the read-ahead thread
};

std::unique_ptr<Reader> open_file(const std::string& path, uint64_t from, bool hold, bool follow,
                                  std::string* error) {
  std::string scratch;
  std::string& err = error != nullptr ? *error : scratch;
  const std::string quoted = "'" + path + "'";
  // Refused before anything can block: a FIFO or device named as a trace would hang open() or
  // read() for ever (gpumem/regular_file.h).
  std::string why;
  uint64_t size = 0;
  const int fd = open_regular_file(path, &why, &size);
  if (fd < 0) {
    if (why.rfind("cannot ", 0) == 0)  // "cannot open: <reason>" or "cannot stat: <reason>"
      err = why.insert(why.find(':'), " trace " + quoted) +
            "; check the path (gpumem run prints where it wrote the trace)";
    else if (why.rfind("is a directory", 0) == 0)
      err = quoted + " is a directory, not a trace file: pass the path of a .trace file";
    else
      err = quoted + " " + why +
            ": pass the path of a .trace file (copy the trace to a file and "
            "read that)";
    return nullptr;
  }
  auto fail = [&](std::string message) -> std::unique_ptr<Reader> {
    ::close(fd);
    err = std::move(message);
    return nullptr;
  };

  auto header = std::make_unique<Header>();
  std::memset(header.get(), 0, sizeof(Header));
  const ssize_t got = read_at(fd, reinterpret_cast<char*>(header.get()), sizeof(Header), 0);
  if (got < 0) return fail("cannot read trace " + quoted + ": " + std::strerror(errno));
  // Empty, or its magic still zero: a writer stopped (or still starting) before its header.
  static constexpr char kZeros[sizeof(kMagic)] = {};
  if (got == 0 || (static_cast<size_t>(got) >= sizeof(header->magic) &&
                   std::memcmp(header->magic, kZeros, sizeof(kZeros)) == 0))
    return fail(quoted + (got == 0 ? " is empty" : " begins with zeros") +
                ": no trace header was written to it (the process that was to write it stopped "
                "before, or is starting now); a file that is not a trace could be this too");
  if (static_cast<size_t>(got) < sizeof(header->magic) ||
      std::memcmp(header->magic, kMagic, sizeof(kMagic)) != 0)
    return fail(quoted + " is not a gpumem trace (bad magic): was it written by gpumem run?");
  if (static_cast<size_t>(got) < offsetof(Header, record_size) + sizeof(uint32_t))
    return fail(quoted + " ends inside its header (" + std::to_string(size) +
                " bytes): the file was cut short and holds no records");
  if (header->version != kVersion && header->version != kVersionCompact)
    return fail(quoted + " was written by trace format version " + std::to_string(header->version) +
                "; this reader reads versions " + std::to_string(kVersion) + " and " +
                std::to_string(kVersionCompact) + ": upgrade gpumem" +
                (header->version < kVersion ? " (or use the gpumem that wrote it)" : ""));
  if (header->header_size != kHeaderSize || header->record_size != kRecordSize)
    return fail(quoted + " has a damaged header (header_size " +
                std::to_string(header->header_size) + ", record_size " +
                std::to_string(header->record_size) + "; expected " + std::to_string(kHeaderSize) +
                " and " + std::to_string(kRecordSize) + "): the file cannot be read");
  if (size < kHeaderSize)
    return fail(quoted + " ends inside its header (" + std::to_string(size) + " of " +
                std::to_string(kHeaderSize) +
                " bytes): the file was cut short and holds no records");

  make_header_safe(header.get());
  if (from < kHeaderSize || (from - kHeaderSize) % kRecordSize != 0) from = kHeaderSize;
  if (header->version == kVersionCompact)
    return open_compact(fd, path, size, std::move(header), (from - kHeaderSize) / kRecordSize,
                        hold, follow, &err);
  return std::make_unique<FileReader>(fd, path, size, std::move(header), from, hold, follow);
}

}  // namespace

// Strings and counts come from the file: make them safe to use as C strings and indexes.
void make_header_safe(Header* header) {
  if (header->device_count > static_cast<uint32_t>(kMaxDevices)) header->device_count = kMaxDevices;
  terminate_string(header->host);
  terminate_string(header->pool);
  terminate_string(header->command);
  terminate_string(header->config);
  for (DeviceInfo& d : header->devices) terminate_string(d.name);
}

std::unique_ptr<Reader> Reader::open(const std::string& path, std::string* error) {
  return open_file(path, kHeaderSize, false, false, error);
}

std::unique_ptr<Reader> open_from(const std::string& path, uint64_t from, bool hold,
                                  std::string* error) {
  return open_file(path, from, hold, true, error);
}

std::unique_ptr<Reader> open_raw_records(int fd, const std::string& path, uint64_t size,
                                         std::unique_ptr<Header> header, bool hold) {
  // The raw chunks of a compact trace: under 1 MiB, in memory; read directly, no thread.
  return std::make_unique<FileReader>(fd, path, size, std::move(header), kHeaderSize, hold,
                                      /*follow=*/true);
}

bool follow_on(Reader& reader, bool hold) {
  if (auto* file = dynamic_cast<FileReader*>(&reader); file != nullptr) return file->follow_on(hold);
  return compact_follow_on(reader, hold);
}

uint64_t resume_offset(const Reader& reader) {
  if (const uint64_t compact = compact_resume_offset(reader); compact != 0) return compact;
  const auto* file = dynamic_cast<const FileReader*>(&reader);
  return file != nullptr ? file->resume_offset() : kHeaderSize;
}

}  // namespace gpumem::trace
