// ObjectHandle: one opened and loaded bpf_object. Program fds belong to the
// object and stay valid until close(); maps are taken out as MapHandles with
// their own (duplicated) fds.
#include <bpf/libbpf.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

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

  // new ObjectHandle(path, pinRoot?, maxEntries?): bpf_object__open_file, then each map named in
  // maxEntries ({ name: entries }; names the object lacks are skipped) resized, then load.
  explicit ObjectHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ObjectHandle>(info) {
    Napi::Env env = info.Env();
    std::string path = ArgString(info, 0, "path");
    std::string pin_root = ArgOptString(info, 1);
    std::vector<std::pair<std::string, uint32_t>> sizes;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object given = info[2].As<Napi::Object>();
      Napi::Array names = given.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); i++) {
        std::string name = names.Get(i).ToString().Utf8Value();
        Napi::Value n = given.Get(name);
        if (!n.IsNumber() || n.As<Napi::Number>().DoubleValue() < 1 || n.As<Napi::Number>().DoubleValue() > 4294967295.0) {
          throw Napi::TypeError::New(env, "maxEntries." + name + " must be a number from 1 to 2^32-1");
        }
        sizes.emplace_back(name, n.As<Napi::Number>().Uint32Value());
      }
    }

    BeginOp();
    auto opts = ZeroOpts<bpf_object_open_opts>();
    opts.pin_root_path = pin_root.empty() ? nullptr : pin_root.c_str();
    bpf_object* obj = bpf_object__open_file(path.c_str(), &opts);
    if (!obj) ThrowErrno(env, "bpf_object__open_file", errno, path);
    for (const auto& [name, entries] : sizes) {
      bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
      if (!map) continue;
      int set = bpf_map__set_max_entries(map, entries);
      if (set < 0) {
        bpf_object__close(obj);
        ThrowErrno(env, "bpf_map__set_max_entries", set, name);
      }
    }

    int err = bpf_object__load(obj);
    if (err < 0) {
      bpf_object__close(obj);
      ThrowErrno(env, "bpf_object__load", err, path);
    }
    obj_ = obj;
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
  exports.Set("ObjectHandle", ObjectHandle::Define(env));
}

}  // namespace bpfnet
