// libbpf output capture and BpfError construction.
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "bpfnet.h"

// Stands in for libc's stderr inside the static libbpf (see binding.gyp).
extern "C" {
__attribute__((visibility("hidden"))) FILE* bpfnet_libbpf_stderr = stderr;
}

namespace bpfnet {
namespace {

// Enough for a verifier log tail; older output is dropped first.
constexpr size_t kMaxLog = 64 * 1024;
thread_local std::string captured;

int OnLibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  static const bool echo = std::getenv("BPFNET_LIBBPF_DEBUG") != nullptr;
  if (echo) {
    va_list copy;
    va_copy(copy, args);
    std::vfprintf(stderr, fmt, copy);
    va_end(copy);
  }
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = std::vsnprintf(line, sizeof(line), fmt, args);
  if (n < 0) return 0;
  captured.append(line, std::min<size_t>(n, sizeof(line) - 1));
  if (captured.size() > kMaxLog) captured.erase(0, captured.size() - kMaxLog);
  return 0;
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

void InstallLibbpfPrint() { libbpf_set_print(OnLibbpfPrint); }

void BeginOp() { captured.clear(); }

const std::string& CapturedLog() { return captured; }

void ThrowErrno(Napi::Env env, const std::string& op, int err, const std::string& subject, const std::string* libbpf_log) {
  if (err < 0) err = -err;
  if (err == 0) err = EINVAL;  // never report success as an error
  std::string log = Trim(libbpf_log ? *libbpf_log : captured);
  captured.clear();

  std::string message = (subject.empty() ? op : op + "(" + subject + ")") + ": " + std::strerror(err);
  if (!log.empty()) {
    // The last lines say why; the full output stays on error.libbpfLog.
    size_t from = log.size() > 2048 ? log.rfind('\n', log.size() - 2048) : std::string::npos;
    message += "\n" + (from == std::string::npos ? log : "..." + log.substr(from));
  }

  Napi::Object details = Napi::Object::New(env);
  details.Set("op", op);
  details.Set("errno", err);
  details.Set("code", ErrnoName(err));
  details.Set("libbpfLog", log);

  AddonData* data = env.GetInstanceData<AddonData>();
  if (data && !data->errorClass.IsEmpty()) {
    Napi::Object error = data->errorClass.New({Napi::String::New(env, message), details});
    throw Napi::Error(env, error);
  }
  Napi::Error error = Napi::Error::New(env, message);
  for (const char* key : {"op", "errno", "code", "libbpfLog"}) error.Set(key, details.Get(key));
  throw error;
}

int Check(Napi::Env env, const std::string& op, int ret, const std::string& subject) {
  if (ret < 0) ThrowErrno(env, op, ret, subject);
  return ret;
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v > 4294967295.0 || v != static_cast<double>(static_cast<uint32_t>(v)))
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a u32");
  return static_cast<uint32_t>(v);
}

int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name) {
  uint32_t fd = ArgU32(info, i, name);
  if (fd > 0x7fffffff) throw Napi::RangeError::New(info.Env(), std::string(name) + " is no fd");
  return static_cast<int>(fd);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::string ArgOptString(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return "";
  return ArgString(info, i, "optional string");
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBuffer()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

}  // namespace bpfnet
