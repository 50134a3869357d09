#include "structures/inspect.h"

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "structures/kv_store.h"

namespace blizzard::structures {
namespace {

// Keys are binary: show them escaped and cut to a readable length.
constexpr size_t kKeyShownBytesMax = 64;

std::string ShowKey(std::string_view key) {
  // Debian's Abseil has its own string_view type: convert explicitly.
  const std::string_view cut = key.substr(0, kKeyShownBytesMax);
  std::string shown = absl::CHexEscape(absl::string_view(cut.data(), cut.size()));
  if (key.size() > kKeyShownBytesMax) absl::StrAppend(&shown, "...");
  return shown;
}

}  // namespace

absl::StatusOr<std::string> DescribeStore(const std::string& path, size_t entries_max) {
  StoreOptions options;
  options.path = path;
  options.create_if_missing = false;
  options.verify_on_open = false;  // Verified below, to describe what is found.
  options.check_identity = false;
  auto opened = KvStore::Open(options);
  if (!opened.ok()) return opened.status();
  const std::unique_ptr<KvStore> store = std::move(*opened);
  const StoreInfo info = store->Info();
  std::string out = absl::StrFormat(
      "pool            %s (%d bytes)\n"
      "layout version  %d\n"
      "cluster id      %d\n"
      "node id         %d\n"
      "applied index   %d\n"
      "keys            %d\n"
      "state hash      %#018x\n",
      path, info.pool_bytes, info.layout_version, info.cluster_id, info.node_id,
      store->AppliedIndex(), store->Size(), store->StateHash());
  TableShape shape;
  if (auto s = store->Verify(&shape); !s.ok()) {
    return absl::DataLossError(absl::StrCat(out, "verify          FAILED: ", s.message()));
  }
  absl::StrAppendFormat(&out,
                        "arena           %d bytes, %d carved, %d in %d used blocks, %d free\n"
                        "types           %d strings, %d lists, %d sets, %d sorted sets\n"
                        "key buckets     %d%s\n"
                        "verify          OK\n",
                        info.arena_bytes, info.heap_bytes, shape.bytes_allocated, shape.objects,
                        shape.bytes_free, shape.strings, shape.lists, shape.sets, shape.zsets,
                        info.bucket_count, info.resizing ? " (resizing)" : "");
  size_t shown = 0;
  store->ForEachKey([&](std::string_view key, ValueType type) {
    if (shown++ >= entries_max) return;
    uint64_t size = 0;
    switch (type) {
      case ValueType::kString:
        size = store->Get(key)->size();
        break;
      case ValueType::kList:
        size = store->ListLength(key);
        break;
      case ValueType::kSet:
        size = store->SetCard(key);
        break;
      default:
        size = store->ZCard(key);
    }
    absl::StrAppendFormat(&out, "  \"%s\"  %s %d %s\n", ShowKey(key), TypeName(type), size,
                          type == ValueType::kString ? "bytes" : "elements");
  });
  if (shown > entries_max) absl::StrAppendFormat(&out, "  ... %d more\n", shown - entries_max);
  return out;
}

}  // namespace blizzard::structures
