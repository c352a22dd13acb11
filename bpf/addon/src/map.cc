// MapHandle: an fd on one map, from a pinned path (bpf_obj_get) or a
// duplicate of another fd. Raw Buffer keys/values; sizes are checked here so
// no call can make the kernel read or write past a Buffer.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "bpfnet.h"

namespace bpfnet {
namespace {

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// Map fds, unlike program or link fds, list a map_type in their fdinfo.
bool IsMapFd(int fd) {
  std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return false;
  char line[256];
  bool found = false;
  while (!found && std::fgets(line, sizeof(line), f)) found = std::strncmp(line, "map_type:", 9) == 0;
  std::fclose(f);
  return found;
}

class MapHandle : public Napi::ObjectWrap<MapHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MapHandle",
                       {
                           InstanceMethod<&MapHandle::Lookup>("lookup"),
                           InstanceMethod<&MapHandle::Update>("update"),
                           InstanceMethod<&MapHandle::Delete>("delete"),
                           InstanceMethod<&MapHandle::NextKey>("nextKey"),
                           InstanceMethod<&MapHandle::Pin>("pin"),
                           InstanceMethod<&MapHandle::Close>("close"),
                           InstanceAccessor<&MapHandle::Fd>("fd"),
                           InstanceAccessor<&MapHandle::Info>("info"),
                       });
  }

  // new MapHandle(pinnedPath) or new MapHandle(fdToDuplicate)
  explicit MapHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MapHandle>(info) {
    Napi::Env env = info.Env();
    BeginOp();
    if (info[0].IsString()) {
      std::string path = info[0].As<Napi::String>().Utf8Value();
      fd_ = Check(env, "bpf_obj_get", bpf_obj_get(path.c_str()), path);
    } else {
      int src = ArgFd(info, 0, "fd");
      fd_ = fcntl(src, F_DUPFD_CLOEXEC, 3);
      if (fd_ < 0) ThrowErrno(env, "dup", errno, std::to_string(src));
    }

    // bpf_obj_get_info_by_fd fills whatever info the fd's kind has, so make
    // sure it is a map before reading the answer as bpf_map_info.
    if (!IsMapFd(fd_)) {
      close(fd_);
      fd_ = -1;
      ThrowErrno(env, "MapHandle", EINVAL, "not a BPF map");
    }
    bpf_map_info map_info;
    std::memset(&map_info, 0, sizeof(map_info));
    uint32_t len = sizeof(map_info);
    int err = bpf_obj_get_info_by_fd(fd_, &map_info, &len);
    if (err < 0) {
      close(fd_);
      fd_ = -1;
      ThrowErrno(env, "bpf_obj_get_info_by_fd", err);
    }
    info_ = map_info;
    cpus_ = IsPerCpu(info_.type) ? libbpf_num_possible_cpus() : 1;
    if (cpus_ < 1) cpus_ = 1;
    // Per-CPU values come as one slot per possible CPU, each 8-byte aligned.
    value_buffer_size_ = IsPerCpu(info_.type) ? ((info_.value_size + 7) & ~7u) * cpus_ : info_.value_size;
  }

  ~MapHandle() override {
    if (fd_ >= 0) close(fd_);
  }

 private:
  int Live(Napi::Env env) {
    if (fd_ < 0) throw Napi::Error::New(env, "BPF map is closed");
    return fd_;
  }

  void CheckKey(Napi::Env env, const Napi::Buffer<uint8_t>& key) {
    if (key.Length() != info_.key_size)
      throw Napi::RangeError::New(env, "key must be " + std::to_string(info_.key_size) + " bytes");
  }

  // lookup(key) → Buffer | null
  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Live(env);
    auto key = ArgBuffer(info, 0, "key");
    CheckKey(env, key);
    auto value = Napi::Buffer<uint8_t>::New(env, value_buffer_size_);
    BeginOp();
    int err = bpf_map_lookup_elem(fd, key.Data(), value.Data());
    if (err == -ENOENT) return env.Null();
    Check(env, "bpf_map_lookup_elem", err, info_.name);
    return value;
  }

  // update(key, value, flags)
  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Live(env);
    auto key = ArgBuffer(info, 0, "key");
    auto value = ArgBuffer(info, 1, "value");
    uint32_t flags = info.Length() > 2 ? ArgU32(info, 2, "flags") : uint32_t{BPF_ANY};
    CheckKey(env, key);
    if (value.Length() != value_buffer_size_)
      throw Napi::RangeError::New(env, "value must be " + std::to_string(value_buffer_size_) + " bytes");
    BeginOp();
    Check(env, "bpf_map_update_elem", bpf_map_update_elem(fd, key.Data(), value.Data(), flags), info_.name);
    return env.Undefined();
  }

  // delete(key) → whether the key existed
  Napi::Value Delete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Live(env);
    auto key = ArgBuffer(info, 0, "key");
    CheckKey(env, key);
    BeginOp();
    int err = bpf_map_delete_elem(fd, key.Data());
    if (err == -ENOENT) return Napi::Boolean::New(env, false);
    Check(env, "bpf_map_delete_elem", err, info_.name);
    return Napi::Boolean::New(env, true);
  }

  // nextKey(key | null) → the following key, or null after the last one
  Napi::Value NextKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Live(env);
    const void* prev = nullptr;
    if (!info[0].IsNull() && !info[0].IsUndefined()) {
      auto key = ArgBuffer(info, 0, "key");
      CheckKey(env, key);
      prev = key.Data();
    }
    auto next = Napi::Buffer<uint8_t>::New(env, info_.key_size);
    BeginOp();
    int err = bpf_map_get_next_key(fd, prev, next.Data());
    if (err == -ENOENT) return env.Null();
    Check(env, "bpf_map_get_next_key", err, info_.name);
    return next;
  }

  // pin(path)
  Napi::Value Pin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Live(env);
    std::string path = ArgString(info, 0, "path");
    BeginOp();
    Check(env, "bpf_obj_pin", bpf_obj_pin(fd, path.c_str()), path);
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return info.Env().Undefined();
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  // { id, name, type, keySize, valueSize, maxEntries, flags, cpus, valueBufferSize }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("id", info_.id);
    out.Set("name", info_.name);
    out.Set("type", info_.type);
    out.Set("keySize", info_.key_size);
    out.Set("valueSize", info_.value_size);
    out.Set("maxEntries", info_.max_entries);
    out.Set("flags", info_.map_flags);
    out.Set("cpus", cpus_);
    out.Set("valueBufferSize", value_buffer_size_);
    return out;
  }

  int fd_ = -1;
  bpf_map_info info_{};
  int cpus_ = 1;
  uint32_t value_buffer_size_ = 0;
};

}  // namespace

void InitMap(Napi::Env env, Napi::Object exports) {
  exports.Set("MapHandle", MapHandle::Define(env));
}

}  // namespace bpfnet
