// rtnetlink requests, sent on libuv's threadpool. The messages come encoded from TypeScript
// (bpf/rtnetlink.ts); this file only opens a NETLINK_ROUTE socket in the wanted network
// namespace, sends each request with NLM_F_ACK, and hands back the replies. The socket belongs
// to the namespace it was opened in, so the worker thread enters the namespace only for the
// socket() call and is back in its own before any request is sent.
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "bpfnet.h"

namespace bpfnet {
namespace {

// No kernel answer takes this long; a worker thread must never hang for good.
constexpr int kReplyTimeoutSec = 10;
constexpr size_t kRecvBuffer = 64 * 1024;

struct Failure {
  int err = 0;
  std::string op;            // "open", "setns", "socket", "send", "recv", "request"
  int index = -1;            // the failing request (op "request"), else -1
  std::string kernelMessage;  // the extended ack's text, if the kernel gave one
};

// A NETLINK_ROUTE socket in the namespace at `path` ("" = the thread's own), or -1 with `f` set.
int OpenRouteSocket(const std::string& path, Failure& f) {
  int original = -1;
  if (!path.empty()) {
    const char* op = "";
    original = EnterNetns(path, f.err, op);
    if (original < 0) return f.op = op, -1;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  int socketErr = errno;
  if (original >= 0) LeaveNetns(original);  // before any request: the socket keeps the namespace
  if (fd < 0) return f.err = socketErr, f.op = "socket", -1;
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));  // best effort: the kernel's reason text
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));   // acks without the request echoed back
  timeval tv{kReplyTimeoutSec, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) < 0) {
    f.err = errno, f.op = "bind";
    close(fd);
    return -1;
  }
  return fd;
}

// The NLMSGERR_ATTR_MSG text after an error's payload, if any.
std::string ExtackMessage(const nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
  const char* base = reinterpret_cast<const char*>(h);
  while (off + sizeof(nlattr) <= h->nlmsg_len) {
    const auto* a = reinterpret_cast<const nlattr*>(base + off);
    if (a->nla_len < sizeof(nlattr) || off + a->nla_len > h->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG)
      return std::string(base + off + NLA_HDRLEN, strnlen(base + off + NLA_HDRLEN, a->nla_len - NLA_HDRLEN));
    off += NLA_ALIGN(a->nla_len);
  }
  return "";
}

// The ifindex of an RTM_NEWLINK reply (ifinfomsg.ifi_index), or 0.
int32_t ReplyIfindex(const nlmsghdr* h) {
  if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return 0;
  return static_cast<const ifinfomsg*>(NLMSG_DATA(h))->ifi_index;
}

// Sends one request and collects its replies until the ack (or a dump's NLMSG_DONE); `ifindex`
// becomes the device an RTM_NEWLINK reply describes.
bool Transact(int fd, std::vector<uint8_t>& request, uint32_t seq, std::vector<std::vector<uint8_t>>& replies, int32_t& ifindex, Failure& f) {
  auto* req = reinterpret_cast<nlmsghdr*>(request.data());
  req->nlmsg_seq = seq;
  req->nlmsg_pid = 0;
  req->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    f.err = errno, f.op = "send";
    return false;
  }
  std::vector<uint8_t> buf(kRecvBuffer);
  for (;;) {
    ssize_t got = recv(fd, buf.data(), buf.size(), 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      f.err = errno, f.op = "recv";
      return false;
    }
    int left = static_cast<int>(got);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq) continue;  // a stale answer to an earlier request
      if (h->nlmsg_type == NLMSG_DONE) return true;
      if (h->nlmsg_type == NLMSG_ERROR) {
        int code = static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
        if (code == 0) return true;
        f.err = -code, f.op = "request", f.kernelMessage = ExtackMessage(h);
        return false;
      }
      if (int32_t i = ReplyIfindex(h)) ifindex = i;
      const auto* p = reinterpret_cast<const uint8_t*>(h);
      replies.emplace_back(p, p + h->nlmsg_len);
    }
  }
}

class NetlinkWorker : public PromiseWorker {
 public:
  NetlinkWorker(Napi::Env env, std::string netns, std::vector<std::vector<uint8_t>> requests, std::vector<std::vector<uint32_t>> patches)
      : PromiseWorker(env), netns_(std::move(netns)), requests_(std::move(requests)), patches_(std::move(patches)) {}

 protected:
  void Execute() override {
    int fd = OpenRouteSocket(netns_, failure_);
    if (fd < 0) return;
    replies_.resize(requests_.size());
    int32_t ifindex = 0;  // of the last device a reply described: what patched requests act on
    for (size_t i = 0; i < requests_.size(); i++) {
      if (!patches_[i].empty() && ifindex == 0) {
        failure_.err = ENODEV, failure_.op = "request", failure_.index = static_cast<int>(i);
        failure_.kernelMessage = "no earlier reply named a device";
        break;
      }
      for (uint32_t at : patches_[i]) std::memcpy(requests_[i].data() + at, &ifindex, sizeof(ifindex));
      if (!Transact(fd, requests_[i], static_cast<uint32_t>(i + 1), replies_[i], ifindex, failure_)) {
        failure_.index = static_cast<int>(i);
        break;
      }
    }
    close(fd);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failure_.err != 0) {
      // BpfError (errno, code) through the shared constructor, then where it failed.
      std::string subject = failure_.index >= 0 ? "request " + std::to_string(failure_.index) : netns_;
      if (!failure_.kernelMessage.empty()) subject += ": " + failure_.kernelMessage;
      try {
        ThrowErrno(env, "netlink " + failure_.op, failure_.err, subject);
      } catch (const Napi::Error& e) {
        Napi::Object error = e.Value();
        error.Set("requestIndex", failure_.index);
        error.Set("kernelMessage", failure_.kernelMessage);
        deferred_.Reject(error);
      }
      return;
    }
    Napi::Array out = Napi::Array::New(env, replies_.size());
    for (size_t i = 0; i < replies_.size(); i++) {
      Napi::Array list = Napi::Array::New(env, replies_[i].size());
      for (size_t j = 0; j < replies_[i].size(); j++)
        list.Set(j, Napi::Buffer<uint8_t>::Copy(env, replies_[i][j].data(), replies_[i][j].size()));
      out.Set(i, list);
    }
    deferred_.Resolve(out);
  }

 private:
  std::string netns_;
  std::vector<std::vector<uint8_t>> requests_;
  std::vector<std::vector<uint32_t>> patches_;
  std::vector<std::vector<std::vector<uint8_t>>> replies_;
  Failure failure_;
};

// netlinkTransact(netns | null, requests: Buffer[], patches?: (number[] | null)[]) → Promise<Buffer[][]>:
// each request a whole rtnetlink message (nlmsghdr first); sent in order, the first failure
// rejects with BpfError (errno, code, requestIndex, kernelMessage) and later requests are not
// sent. patches[i] lists byte offsets of request i where the ifindex of the device the last
// RTM_NEWLINK reply described is written before sending, so a device made and read back in one
// call can be configured in the same call (its ifindex is the kernel's choice).
Napi::Value NetlinkTransact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string netns = ArgOptString(info, 0);
  if (netns.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "netns must not contain NUL");
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "requests must be an array of Buffers");
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<std::vector<uint8_t>> requests;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsBuffer()) throw Napi::TypeError::New(env, "requests must be an array of Buffers");
    auto b = v.As<Napi::Buffer<uint8_t>>();
    uint32_t len = 0;
    if (b.Length() >= NLMSG_HDRLEN) std::memcpy(&len, b.Data(), sizeof(len));  // nlmsg_len; the Buffer may be unaligned
    if (b.Length() < NLMSG_HDRLEN || len != b.Length() || b.Length() > kRecvBuffer)
      throw Napi::RangeError::New(env, "request " + std::to_string(i) + " is not one whole netlink message");
    requests.emplace_back(b.Data(), b.Data() + b.Length());
  }
  std::vector<std::vector<uint32_t>> patches(requests.size());
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsArray()) throw Napi::TypeError::New(env, "patches must be an array");
    Napi::Array given = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < given.Length() && i < requests.size(); i++) {
      Napi::Value v = given.Get(i);
      if (v.IsUndefined() || v.IsNull()) continue;
      if (!v.IsArray()) throw Napi::TypeError::New(env, "patches[" + std::to_string(i) + "] must be an array of offsets");
      Napi::Array offsets = v.As<Napi::Array>();
      for (uint32_t j = 0; j < offsets.Length(); j++) {
        Napi::Value o = offsets.Get(j);
        double at = o.IsNumber() ? o.As<Napi::Number>().DoubleValue() : -1;
        if (at < NLMSG_HDRLEN || at + sizeof(int32_t) > requests[i].size() || at != static_cast<double>(static_cast<uint32_t>(at)))
          throw Napi::RangeError::New(env, "patches[" + std::to_string(i) + "] has an offset outside its request");
        patches[i].push_back(static_cast<uint32_t>(at));
      }
    }
  }
  return PromiseWorker::Start(new NetlinkWorker(env, netns, std::move(requests), std::move(patches)));
}

}  // namespace

void InitNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("netlinkTransact", Napi::Function::New<NetlinkTransact>(env, "netlinkTransact"));
}

}  // namespace bpfnet
