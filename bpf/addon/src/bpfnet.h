// Shared declarations of the native layer. The addon is deliberately thin:
// it maps libbpf calls one to one, owns file descriptors, and turns failures
// into BpfError; validation and encoding live in the TypeScript layer.
#pragma once

#include <napi.h>

#include <cstring>
#include <string>

namespace bpfnet {

// Per-environment state.
struct AddonData {
  Napi::FunctionReference errorClass;  // BpfError from bpf/errors.ts, once registered
};

// Starts an operation: clears the captured libbpf output so an error reports
// only what this operation printed.
void BeginOp();

// What libbpf printed since BeginOp (warnings, kernel extack messages).
const std::string& CapturedLog();

// Throws BpfError(op, errno) with strerror and the libbpf output of this op.
// subject names what the op acted on (a path, a program, an ifindex).
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& op, int err,
                             const std::string& subject = "");

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

void InitObject(Napi::Env env, Napi::Object exports);
void InitMap(Napi::Env env, Napi::Object exports);
void InitTc(Napi::Env env, Napi::Object exports);
void InitProg(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitRingbuf(Napi::Env env, Napi::Object exports);
void InitCgroup(Napi::Env env, Napi::Object exports);

}  // namespace bpfnet
