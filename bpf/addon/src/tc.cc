// tc (clsact) hooks through libbpf's netlink API. Every call takes an
// optional network namespace: the calling thread enters it for the duration
// of the one synchronous call (libbpf opens its netlink socket there, and
// ifindexes are resolved there) and returns before any JS runs again.
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "bpfnet.h"

namespace bpfnet {
namespace {

bpf_tc_attach_point ArgAttachPoint(const Napi::CallbackInfo& info, size_t i) {
  std::string where = ArgString(info, i, "direction");
  if (where == "ingress") return BPF_TC_INGRESS;
  if (where == "egress") return BPF_TC_EGRESS;
  throw Napi::TypeError::New(info.Env(), "direction must be 'ingress' or 'egress'");
}

bpf_tc_hook Hook(const Napi::CallbackInfo& info, bpf_tc_attach_point point) {
  auto hook = ZeroOpts<bpf_tc_hook>();
  hook.ifindex = static_cast<int>(ArgU32(info, 0, "ifindex"));
  hook.attach_point = point;
  return hook;
}

std::string Subject(const bpf_tc_hook& hook) { return "ifindex " + std::to_string(hook.ifindex); }

// tcHookCreate(ifindex, direction, netns?) → true if this call created the
// clsact qdisc, false if it already existed.
Napi::Value TcHookCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_tc_hook hook = Hook(info, ArgAttachPoint(info, 1));
  NetnsScope netns(env, ArgOptString(info, 2));
  BeginOp();
  int err = bpf_tc_hook_create(&hook);
  if (err == -EEXIST) return Napi::Boolean::New(env, false);
  Check(env, "bpf_tc_hook_create", err, Subject(hook));
  return Napi::Boolean::New(env, true);
}

// tcHookDestroy(ifindex, netns?): removes the clsact qdisc, i.e. both
// directions and every filter on them.
Napi::Value TcHookDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_tc_hook hook = Hook(info, static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  NetnsScope netns(env, ArgOptString(info, 1));
  BeginOp();
  Check(env, "bpf_tc_hook_destroy", bpf_tc_hook_destroy(&hook), Subject(hook));
  return env.Undefined();
}

Napi::Object Attachment(Napi::Env env, const bpf_tc_opts& opts) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("handle", opts.handle);
  out.Set("priority", opts.priority);
  out.Set("progId", opts.prog_id);
  return out;
}

// tcAttach(ifindex, direction, progFd, handle, priority, replace, netns?)
//   → { handle, priority, progId }
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_tc_hook hook = Hook(info, ArgAttachPoint(info, 1));
  auto opts = ZeroOpts<bpf_tc_opts>();
  opts.prog_fd = ArgFd(info, 2, "progFd");
  opts.handle = ArgU32(info, 3, "handle");
  opts.priority = ArgU32(info, 4, "priority");
  opts.flags = info[5].ToBoolean() ? BPF_TC_F_REPLACE : 0;
  NetnsScope netns(env, ArgOptString(info, 6));
  BeginOp();
  Check(env, "bpf_tc_attach", bpf_tc_attach(&hook, &opts), Subject(hook));
  return Attachment(env, opts);
}

// The filter a detach or query names: args (…, handle, priority) at positions 2 and 3.
bpf_tc_opts FilterOpts(const Napi::CallbackInfo& info) {
  auto opts = ZeroOpts<bpf_tc_opts>();
  opts.handle = ArgU32(info, 2, "handle");
  opts.priority = ArgU32(info, 3, "priority");
  return opts;
}

// tcDetach(ifindex, direction, handle, priority, netns?)
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_tc_hook hook = Hook(info, ArgAttachPoint(info, 1));
  bpf_tc_opts opts = FilterOpts(info);
  NetnsScope netns(env, ArgOptString(info, 4));
  BeginOp();
  Check(env, "bpf_tc_detach", bpf_tc_detach(&hook, &opts), Subject(hook));
  return env.Undefined();
}

// tcQuery(ifindex, direction, handle, priority, netns?) → { handle, priority, progId } | null
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_tc_hook hook = Hook(info, ArgAttachPoint(info, 1));
  bpf_tc_opts opts = FilterOpts(info);
  NetnsScope netns(env, ArgOptString(info, 4));
  BeginOp();
  int err = bpf_tc_query(&hook, &opts);
  // Deleting the last filter of a hook removes its chain, and the kernel then
  // answers a query with EINVAL instead of ENOENT: both mean "no filter".
  if (err == -ENOENT ||
      (err == -EINVAL && CapturedLog().find("Cannot find specified filter chain") != std::string::npos))
    return env.Null();
  Check(env, "bpf_tc_query", err, Subject(hook));
  return Attachment(env, opts);
}

}  // namespace

void InitTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcHookCreate", Napi::Function::New<TcHookCreate>(env, "tcHookCreate"));
  exports.Set("tcHookDestroy", Napi::Function::New<TcHookDestroy>(env, "tcHookDestroy"));
  exports.Set("tcAttach", Napi::Function::New<TcAttach>(env, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New<TcDetach>(env, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New<TcQuery>(env, "tcQuery"));
}

}  // namespace bpfnet
