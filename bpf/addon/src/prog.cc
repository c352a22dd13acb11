// Program-level calls: info by fd, and BPF_PROG_TEST_RUN.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <vector>

#include "bpfnet.h"

namespace bpfnet {
namespace {

// Room for programs that grow the packet (encapsulation, options).
constexpr uint32_t kDataOutHeadroom = 256;

// progInfo(fd) → { id, name, type, tag }
Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  bpf_prog_info prog_info;
  std::memset(&prog_info, 0, sizeof(prog_info));
  uint32_t len = sizeof(prog_info);
  BeginOp();
  Check(env, "bpf_obj_get_info_by_fd", bpf_obj_get_info_by_fd(fd, &prog_info, &len));

  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) std::snprintf(tag + 2 * i, 3, "%02x", prog_info.tag[i]);
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", prog_info.id);
  out.Set("name", prog_info.name);
  out.Set("type", prog_info.type);
  out.Set("tag", tag);
  return out;
}

// progTestRun(fd, data, repeat, ifindex, cb?, netns?) → { retval, data, duration, mark }
// ifindex > 1 makes the packet appear on that device (skb->ifindex); else loopback.
// cb (up to 5 u32) presets skb->cb, e.g. for test builds that read metadata from it.
// netns (a path): the run happens there, so its devices, routes and neighbours are the ones
// the program sees (bpf_fib_lookup); the packet still goes nowhere.
Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  auto data = ArgBuffer(info, 1, "data");
  uint32_t repeat = ArgU32(info, 2, "repeat");
  uint32_t ifindex = ArgU32(info, 3, "ifindex");

  std::vector<uint8_t> out(data.Length() + kDataOutHeadroom);
  __sk_buff ctx;
  std::memset(&ctx, 0, sizeof(ctx));
  ctx.ifindex = ifindex;
  bool has_cb = info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull();
  if (has_cb) {
    if (!info[4].IsArray()) throw Napi::TypeError::New(env, "cb must be an array of u32");
    Napi::Array cb = info[4].As<Napi::Array>();
    if (cb.Length() > 5) throw Napi::RangeError::New(env, "cb holds at most 5 words");
    for (uint32_t i = 0; i < cb.Length(); i++) {
      Napi::Value v = cb.Get(i);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d)))
        throw Napi::RangeError::New(env, "cb words must be u32");
      ctx.cb[i] = static_cast<uint32_t>(d);
    }
  }

  auto opts = ZeroOpts<bpf_test_run_opts>();
  opts.data_in = data.Data();
  opts.data_size_in = static_cast<uint32_t>(data.Length());
  opts.data_out = out.data();
  opts.data_size_out = static_cast<uint32_t>(out.size());
  opts.repeat = static_cast<int>(repeat);
  if (ifindex > 1 || has_cb) {
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
  }
  __sk_buff ctx_out;
  std::memset(&ctx_out, 0, sizeof(ctx_out));
  opts.ctx_out = &ctx_out;
  opts.ctx_size_out = sizeof(ctx_out);
  BeginOp();
  {
    NetnsScope netns(env, ArgOptString(info, 5));
    Check(env, "bpf_prog_test_run_opts", bpf_prog_test_run_opts(fd, &opts));
  }

  Napi::Object result = Napi::Object::New(env);
  result.Set("retval", opts.retval);
  result.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), opts.data_size_out));
  result.Set("duration", opts.duration);
  result.Set("mark", ctx_out.mark);
  return result;
}

}  // namespace

void InitProg(Napi::Env env, Napi::Object exports) {
  exports.Set("progInfo", Napi::Function::New<ProgInfo>(env, "progInfo"));
  exports.Set("progTestRun", Napi::Function::New<ProgTestRun>(env, "progTestRun"));
}

}  // namespace bpfnet
