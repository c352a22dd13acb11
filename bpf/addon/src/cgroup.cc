// cgroup attachments as pinned bpf_links (the socket-level service hooks), and the calling
// thread's network namespace cookie (which namespace those hooks act in). A link pinned on bpffs
// outlives the process that made it; removing its last pin (or bpf_link_detach) detaches it.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>

#include "bpfnet.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace bpfnet {
namespace {

const std::map<std::string, bpf_attach_type> kAttachTypes = {
    {"connect4", BPF_CGROUP_INET4_CONNECT},
    {"sendmsg4", BPF_CGROUP_UDP4_SENDMSG},
    {"recvmsg4", BPF_CGROUP_UDP4_RECVMSG},
    {"getpeername4", BPF_CGROUP_INET4_GETPEERNAME},
};

bpf_attach_type AttachType(Napi::Env env, const std::string& name) {
  auto it = kAttachTypes.find(name);
  if (it == kAttachTypes.end()) throw Napi::RangeError::New(env, "unknown cgroup attach type " + name);
  return it->second;
}

// cgroupLinkCreate(progFd, cgroupPath, attachType, pinPath) → { linkId, progId }
// Attaches (multi-attach, as every link) and pins; nothing stays attached if the pin fails.
Napi::Value CgroupLinkCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = ArgFd(info, 0, "progFd");
  std::string cgroup = ArgString(info, 1, "cgroupPath");
  bpf_attach_type type = AttachType(env, ArgString(info, 2, "attachType"));
  std::string pin = ArgString(info, 3, "pinPath");

  int cg_fd = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg_fd < 0) ThrowErrno(env, "open", errno, cgroup);
  BeginOp();
  int link_fd = bpf_link_create(prog_fd, cg_fd, type, nullptr);
  int err = link_fd < 0 ? -link_fd : 0;
  close(cg_fd);
  if (err) ThrowErrno(env, "bpf_link_create", err, cgroup);
  if (bpf_obj_pin(link_fd, pin.c_str()) < 0) {
    err = errno;
    close(link_fd);  // the only reference: this detaches it again
    ThrowErrno(env, "bpf_obj_pin", err, pin);
  }
  bpf_link_info link_info;
  std::memset(&link_info, 0, sizeof(link_info));
  uint32_t len = sizeof(link_info);
  int ret = bpf_obj_get_info_by_fd(link_fd, &link_info, &len);
  close(link_fd);
  Check(env, "bpf_obj_get_info_by_fd", ret, pin);
  Napi::Object out = Napi::Object::New(env);
  out.Set("linkId", link_info.id);
  out.Set("progId", link_info.prog_id);
  return out;
}

// linkInfo(pinPath) → { linkId, progId, progTag, cgroupId, attachType } of a pinned link, or null when
// there is no pin. A detached link still pinned reports cgroupId 0.
Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = ArgString(info, 0, "pinPath");
  BeginOp();
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return env.Null();
    ThrowErrno(env, "bpf_obj_get", errno, pin);
  }
  bpf_link_info link_info;
  std::memset(&link_info, 0, sizeof(link_info));
  uint32_t len = sizeof(link_info);
  int ret = bpf_obj_get_info_by_fd(fd, &link_info, &len);
  close(fd);
  Check(env, "bpf_obj_get_info_by_fd", ret, pin);
  Napi::Object out = Napi::Object::New(env);
  out.Set("linkId", link_info.id);
  out.Set("progId", link_info.prog_id);
  out.Set("cgroupId", Napi::BigInt::New(env, static_cast<uint64_t>(link_info.cgroup.cgroup_id)));
  // The attached program's tag: an agent compares it with the program it would attach.
  std::string tag;
  int prog_fd = bpf_prog_get_fd_by_id(link_info.prog_id);
  if (prog_fd >= 0) {
    bpf_prog_info prog_info;
    std::memset(&prog_info, 0, sizeof(prog_info));
    uint32_t prog_len = sizeof(prog_info);
    if (bpf_obj_get_info_by_fd(prog_fd, &prog_info, &prog_len) == 0) {
      char hex[2 * BPF_TAG_SIZE + 1];
      for (int i = 0; i < BPF_TAG_SIZE; i++) std::snprintf(hex + 2 * i, 3, "%02x", prog_info.tag[i]);
      tag = hex;
    }
    close(prog_fd);
  }
  out.Set("progTag", tag);
  std::string type;
  for (const auto& [name, value] : kAttachTypes)
    if (value == link_info.cgroup.attach_type) type = name;
  out.Set("attachType", type);
  return out;
}

// linkDetach(pinPath) → whether a pin was there: detaches the link and removes the pin.
Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = ArgString(info, 0, "pinPath");
  BeginOp();
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, "bpf_obj_get", errno, pin);
  }
  int ret = bpf_link_detach(fd);
  int err = ret < 0 ? errno : 0;
  close(fd);
  // A link detached already (its cgroup went away) still has its pin to remove.
  if (err && err != ENOLINK) ThrowErrno(env, "bpf_link_detach", err, pin);
  if (unlink(pin.c_str()) < 0 && errno != ENOENT) ThrowErrno(env, "unlink", errno, pin);
  return Napi::Boolean::New(env, true);
}

// netnsCookie() → BigInt: SO_NETNS_COOKIE of the calling thread's network namespace (what
// bpf_get_netns_cookie returns for its sockets).
Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  int ret = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  int err = errno;
  close(fd);
  if (ret < 0) ThrowErrno(env, "getsockopt", err, "SO_NETNS_COOKIE");
  return Napi::BigInt::New(env, cookie);
}

}  // namespace

void InitCgroup(Napi::Env env, Napi::Object exports) {
  exports.Set("cgroupLinkCreate", Napi::Function::New<CgroupLinkCreate>(env, "cgroupLinkCreate"));
  exports.Set("linkInfo", Napi::Function::New<LinkInfo>(env, "linkInfo"));
  exports.Set("linkDetach", Napi::Function::New<LinkDetach>(env, "linkDetach"));
  exports.Set("netnsCookie", Napi::Function::New<NetnsCookie>(env, "netnsCookie"));
}

}  // namespace bpfnet
