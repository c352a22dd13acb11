// Shared declarations of the native layer. The addon is deliberately thin:
// it maps libbpf calls one to one, owns file descriptors, and turns failures
// into BpfError; validation and encoding live in the TypeScript layer.
#pragma once

#include <fcntl.h>
#include <napi.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

struct bpf_object;

namespace bpfnet {

// Per-environment state.
struct AddonData {
  Napi::FunctionReference errorClass;  // BpfError from bpf/errors.ts, once registered
  Napi::FunctionReference objectClass;  // ObjectHandle (object.cc), for handles made by objectLoad
};

// Starts an operation: clears the captured libbpf output so an error reports
// only what this operation printed.
void BeginOp();

// What libbpf printed since BeginOp (warnings, kernel extack messages).
const std::string& CapturedLog();

// Throws BpfError(op, errno) with strerror and the libbpf output of this op.
// subject names what the op acted on (a path, a program, an ifindex). libbpf_log: the output
// of an op that ran on another thread (a threadpool worker's CapturedLog), instead of this one's.
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& op, int err,
                             const std::string& subject = "", const std::string* libbpf_log = nullptr);

// Throws when ret < 0 (libbpf returns -errno); returns ret otherwise.
int Check(Napi::Env env, const std::string& op, int ret, const std::string& subject = "");

void InstallLibbpfPrint();

// libbpf option structs start with their own size and must otherwise be zero.
template <typename T>
T ZeroOpts() {
  T opts;
  std::memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  return opts;
}

// Argument helpers that throw TypeError with the argument's name.
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgOptString(const Napi::CallbackInfo& info, size_t i);  // "" when absent/null
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name);

// Moves the calling thread into the network namespace at `path`. Returns an fd of the thread's
// original namespace for LeaveNetns, or -1 with `err` (errno) and `op` ("open"/"setns") set and
// the thread where it was. No JS involved: usable on threadpool workers.
inline int EnterNetns(const std::string& path, int& err, const char*& op) {
  int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) return err = errno, op = "open", -1;
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0 || setns(target, CLONE_NEWNET) < 0) {
    err = errno;
    op = target < 0 ? "open" : "setns";
    if (target >= 0) close(target);
    close(original);
    return -1;
  }
  close(target);
  return original;
}

// Back to the namespace EnterNetns left. Carrying on in the wrong namespace would silently
// misroute every later netlink call and socket of this thread (a threadpool thread: later work
// too): stopping is the safe answer.
inline void LeaveNetns(int original) {
  if (setns(original, CLONE_NEWNET) < 0) {
    std::perror("bpfnet: cannot return to the original network namespace");
    std::abort();
  }
  close(original);
}

// The calling thread in another network namespace (an `ip netns` path) for one synchronous call:
// entered by the constructor (nothing when path is empty), left by the destructor before any JS
// runs again. Used by tc calls (ifindexes resolve there) and test runs (the FIB is that one).
class NetnsScope {
 public:
  NetnsScope(Napi::Env env, const std::string& path) {
    if (path.empty()) return;
    int err = 0;
    const char* op = "";
    original_ = EnterNetns(path, err, op);
    if (original_ < 0) ThrowErrno(env, op, err, path);
  }

  ~NetnsScope() {
    if (original_ >= 0) LeaveNetns(original_);
  }

  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  int original_ = -1;
};

// Work on libuv's threadpool whose outcome is a Promise: Execute() off the JS thread, then the
// subclass's OnOK settles `deferred_`; an error thrown by the worker rejects it. Start() queues
// the worker (it deletes itself when done) and returns the Promise.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  static Napi::Promise Start(PromiseWorker* worker) {
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  Napi::Promise::Deferred deferred_;
};

// Opening and loading one object file (objectLoad.cc), shared by the synchronous ObjectHandle
// constructor and the asynchronous objectLoad: what to load, read from JS arguments
// (path, pinRoot?, maxEntries?), then the libbpf calls, which touch no JS.
struct LoadRequest {
  std::string path;
  std::string pin_root;                                // "" for none
  std::vector<std::pair<std::string, uint32_t>> sizes;  // max_entries by map name
};
struct LoadFailure {
  int err = 0;
  std::string op;
  std::string subject;
};
LoadRequest ParseLoadRequest(const Napi::CallbackInfo& info);
// The loaded object, or nullptr with `failure` set (libbpf's output stays in CapturedLog()).
bpf_object* OpenAndLoad(const LoadRequest& request, LoadFailure& failure);

void InitObject(Napi::Env env, Napi::Object exports);
void InitObjectLoad(Napi::Env env, Napi::Object exports);
void InitMap(Napi::Env env, Napi::Object exports);
void InitTc(Napi::Env env, Napi::Object exports);
void InitProg(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitRingbuf(Napi::Env env, Napi::Object exports);
void InitCgroup(Napi::Env env, Napi::Object exports);
void InitNetlink(Napi::Env env, Napi::Object exports);

}  // namespace bpfnet
