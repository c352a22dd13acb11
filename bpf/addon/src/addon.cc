// Module entry: registers the handles and functions, and the JS error class.
#include <bpf/libbpf.h>

#include "bpfnet.h"

namespace bpfnet {
namespace {

// setErrorClass(BpfError): errors thrown from here on are instances of it
// (the same approach as better-sqlite3's SqliteError).
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "error class must be a constructor");
  info.Env().GetInstanceData<AddonData>()->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value PossibleCpus(const Napi::CallbackInfo& info) {
  BeginOp();
  return Napi::Number::New(info.Env(), Check(info.Env(), "libbpf_num_possible_cpus", libbpf_num_possible_cpus()));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  InstallLibbpfPrint();
  exports.Set("setErrorClass", Napi::Function::New<SetErrorClass>(env, "setErrorClass"));
  exports.Set("possibleCpus", Napi::Function::New<PossibleCpus>(env, "possibleCpus"));
  InitObject(env, exports);
  InitObjectLoad(env, exports);
  InitMap(env, exports);
  InitTc(env, exports);
  InitProg(env, exports);
  InitSocket(env, exports);
  InitRingbuf(env, exports);
  InitCgroup(env, exports);
  InitNetlink(env, exports);
  return exports;
}

}  // namespace bpfnet

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return bpfnet::Init(env, exports); }

NODE_API_MODULE(bpfnet_native, InitModule)
