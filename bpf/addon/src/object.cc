// ObjectHandle: one opened and loaded bpf_object. Program fds belong to the
// object and stay valid until close(); maps are taken out as MapHandles with
// their own (duplicated) fds.
#include <bpf/libbpf.h>

#include <cerrno>
#include <string>

#include "bpfnet.h"

namespace bpfnet {
namespace {

class ObjectHandle : public Napi::ObjectWrap<ObjectHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ObjectHandle",
                       {
                           InstanceMethod<&ObjectHandle::Programs>("programs"),
                           InstanceMethod<&ObjectHandle::Maps>("maps"),
                           InstanceMethod<&ObjectHandle::PinProgram>("pinProgram"),
                           InstanceMethod<&ObjectHandle::UnpinProgram>("unpinProgram"),
                           InstanceMethod<&ObjectHandle::PinMaps>("pinMaps"),
                           InstanceMethod<&ObjectHandle::UnpinMaps>("unpinMaps"),
                           InstanceMethod<&ObjectHandle::Close>("close"),
                           InstanceAccessor<&ObjectHandle::Closed>("closed"),
                       });
  }

  // new ObjectHandle(path, pinRoot?, maxEntries?): bpf_object__open_file, then each map
  // named in maxEntries ({ name: entries }; names the object lacks are skipped) resized, then load
  // (objectLoad.cc). objectLoad hands a loaded object in as an External instead (JS cannot make one).
  explicit ObjectHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ObjectHandle>(info) {
    if (info.Length() > 0 && info[0].IsExternal()) {
      obj_ = info[0].As<Napi::External<bpf_object>>().Data();
      return;
    }
    LoadRequest request = ParseLoadRequest(info);
    LoadFailure failure;
    BeginOp();
    obj_ = OpenAndLoad(request, failure);
    if (!obj_) ThrowErrno(info.Env(), failure.op, failure.err, failure.subject);
  }

  ~ObjectHandle() override { bpf_object__close(obj_); }

 private:
  bpf_object* Live(Napi::Env env) {
    if (!obj_) throw Napi::Error::New(env, "BPF object is closed");
    return obj_;
  }

  bpf_program* FindProgram(Napi::Env env, const std::string& name) {
    bpf_program* prog = bpf_object__find_program_by_name(Live(env), name.c_str());
    if (!prog) ThrowErrno(env, "bpf_object__find_program_by_name", ENOENT, name);
    return prog;
  }

  // [{ name, section, fd }]
  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array list = Napi::Array::New(env);
    bpf_program* prog;
    uint32_t i = 0;
    bpf_object__for_each_program(prog, Live(env)) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("name", bpf_program__name(prog));
      entry.Set("section", bpf_program__section_name(prog));
      entry.Set("fd", bpf_program__fd(prog));
      list.Set(i++, entry);
    }
    return list;
  }

  // [{ name, fd, pinPath }]: pinPath is where LIBBPF_PIN_BY_NAME put the map, or null.
  Napi::Value Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array list = Napi::Array::New(env);
    bpf_map* map;
    uint32_t i = 0;
    bpf_object__for_each_map(map, Live(env)) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("name", bpf_map__name(map));
      entry.Set("fd", bpf_map__fd(map));
      const char* pin = bpf_map__pin_path(map);
      entry.Set("pinPath", pin ? Napi::Value(Napi::String::New(env, pin)) : env.Null());
      list.Set(i++, entry);
    }
    return list;
  }

  // pinProgram(name, path)
  Napi::Value PinProgram(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = ArgString(info, 0, "name");
    std::string path = ArgString(info, 1, "path");
    BeginOp();
    Check(env, "bpf_program__pin", bpf_program__pin(FindProgram(env, name), path.c_str()), path);
    return env.Undefined();
  }

  // unpinProgram(name, path)
  Napi::Value UnpinProgram(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = ArgString(info, 0, "name");
    std::string path = ArgString(info, 1, "path");
    BeginOp();
    Check(env, "bpf_program__unpin", bpf_program__unpin(FindProgram(env, name), path.c_str()), path);
    return env.Undefined();
  }

  // pinMaps(dir?): every map under dir, or each pinned-by-name map at its own pin path.
  Napi::Value PinMaps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string dir = ArgOptString(info, 0);
    BeginOp();
    Check(env, "bpf_object__pin_maps",
          bpf_object__pin_maps(Live(env), dir.empty() ? nullptr : dir.c_str()), dir);
    return env.Undefined();
  }

  // unpinMaps(dir?): the reverse of pinMaps; with no dir this removes the shared pins.
  Napi::Value UnpinMaps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string dir = ArgOptString(info, 0);
    BeginOp();
    Check(env, "bpf_object__unpin_maps",
          bpf_object__unpin_maps(Live(env), dir.empty() ? nullptr : dir.c_str()), dir);
    return env.Undefined();
  }

  // Closes program and map fds held by the object; attached programs and pinned maps live on.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    bpf_object__close(obj_);
    obj_ = nullptr;
    return info.Env().Undefined();
  }

  Napi::Value Closed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), obj_ == nullptr);
  }

  bpf_object* obj_ = nullptr;
};

}  // namespace

void InitObject(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = ObjectHandle::Define(env);
  env.GetInstanceData<AddonData>()->objectClass = Napi::Persistent(ctor);
  exports.Set("ObjectHandle", ctor);
}

}  // namespace bpfnet
