// Loading an object file: the libbpf steps shared by `new ObjectHandle(...)` (synchronous) and
// objectLoad(...), which runs them on libuv's threadpool. Most of a load is the kernel verifying
// the programs; on worker threads several objects verify at once and the main thread goes on
// (the agent's start loads etcd's client meanwhile: docs/agent.md "Start time"). Objects sharing
// pinned-by-name maps may load at once even on a fresh pin root: when two create the same map,
// libbpf's pin of the second fails with EEXIST and it retries by reusing the first one's pin
// (test/bpf/objectLoad.test.ts checks that every object ends up on the pinned maps).
#include <bpf/libbpf.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "bpfnet.h"

namespace bpfnet {

// (path, pinRoot?, maxEntries?)
LoadRequest ParseLoadRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LoadRequest request;
  request.path = ArgString(info, 0, "path");
  request.pin_root = ArgOptString(info, 1);
  if (request.path.find('\0') != std::string::npos || request.pin_root.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, "path and pinRoot must not contain NUL");
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object given = info[2].As<Napi::Object>();
    Napi::Array names = given.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string name = names.Get(i).ToString().Utf8Value();
      Napi::Value n = given.Get(name);
      if (!n.IsNumber() || n.As<Napi::Number>().DoubleValue() < 1 || n.As<Napi::Number>().DoubleValue() > 4294967295.0) {
        throw Napi::TypeError::New(env, "maxEntries." + name + " must be a number from 1 to 2^32-1");
      }
      request.sizes.emplace_back(name, n.As<Napi::Number>().Uint32Value());
    }
  }
  return request;
}

bpf_object* OpenAndLoad(const LoadRequest& request, LoadFailure& failure) {
  auto opts = ZeroOpts<bpf_object_open_opts>();
  opts.pin_root_path = request.pin_root.empty() ? nullptr : request.pin_root.c_str();
  bpf_object* obj = bpf_object__open_file(request.path.c_str(), &opts);
  if (!obj) {
    failure = {errno, "bpf_object__open_file", request.path};
    return nullptr;
  }
  for (const auto& [name, entries] : request.sizes) {
    bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
    if (!map) continue;
    int set = bpf_map__set_max_entries(map, entries);
    if (set < 0) {
      bpf_object__close(obj);
      failure = {set, "bpf_map__set_max_entries", name};
      return nullptr;
    }
  }
  int err = bpf_object__load(obj);
  if (err < 0) {
    bpf_object__close(obj);
    failure = {err, "bpf_object__load", request.path};
    return nullptr;
  }
  return obj;
}

namespace {

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, LoadRequest request) : PromiseWorker(env), request_(std::move(request)) {}

  ~LoadWorker() override { bpf_object__close(obj_); }  // a load nobody took (NULL is fine)

 protected:
  void Execute() override {
    BeginOp();  // this worker thread's capture
    obj_ = OpenAndLoad(request_, failure_);
    if (!obj_) log_ = CapturedLog();
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      if (!obj_) ThrowErrno(env, failure_.op, failure_.err, failure_.subject, &log_);
      Napi::Object handle = env.GetInstanceData<AddonData>()->objectClass.New({Napi::External<bpf_object>::New(env, obj_)});
      obj_ = nullptr;  // the handle owns it now
      deferred_.Resolve(handle);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  LoadRequest request_;
  bpf_object* obj_ = nullptr;
  LoadFailure failure_;
  std::string log_;
};

// objectLoad(path, pinRoot?, maxEntries?) → Promise<ObjectHandle>: the constructor's
// work on the threadpool; a failure rejects with the same BpfError (and the load's libbpf output).
Napi::Value ObjectLoad(const Napi::CallbackInfo& info) {
  return PromiseWorker::Start(new LoadWorker(info.Env(), ParseLoadRequest(info)));
}

}  // namespace

void InitObjectLoad(Napi::Env env, Napi::Object exports) {
  exports.Set("objectLoad", Napi::Function::New<ObjectLoad>(env, "objectLoad"));
}

}  // namespace bpfnet
