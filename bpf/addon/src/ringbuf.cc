// RingReader: reads a BPF ring buffer map on libuv's loop. libbpf's
// ring_buffer keeps an epoll fd over the ring; a uv_poll watches that fd, and
// each readiness consumes every record available and hands them to JS in one
// batch (an array of Buffers). No thread and no busy loop: the loop sleeps in
// epoll until the kernel wakes the ring's waiters.
#include <bpf/libbpf.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <vector>

#include "bpfnet.h"

namespace bpfnet {
namespace {

class RingReader : public Napi::ObjectWrap<RingReader> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingReader",
                       {
                           InstanceMethod<&RingReader::Close>("close"),
                           InstanceMethod<&RingReader::Drain>("drain"),
                           InstanceAccessor<&RingReader::Closed>("closed"),
                       });
  }

  // new RingReader(mapFd, onBatch(records: Buffer[]))
  explicit RingReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingReader>(info) {
    Napi::Env env = info.Env();
    int map_fd = ArgFd(info, 0, "mapFd");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onBatch must be a function");
    on_batch_ = Napi::Persistent(info[1].As<Napi::Function>());
    BeginOp();
    ring_ = ring_buffer__new(map_fd, &RingReader::OnRecord, this, nullptr);
    if (!ring_) ThrowErrno(env, "ring_buffer__new", errno, std::to_string(map_fd));
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
      ring_buffer__free(ring_);
      ring_ = nullptr;
      throw Napi::Error::New(env, "no libuv loop");
    }
    poll_ = new uv_poll_t;
    int err = uv_poll_init(loop, poll_, ring_buffer__epoll_fd(ring_));
    if (err == 0) {
      poll_->data = this;
      err = uv_poll_start(poll_, UV_READABLE, &RingReader::OnReadable);
    }
    if (err != 0) {
      ring_buffer__free(ring_);
      ring_ = nullptr;
      delete poll_;
      poll_ = nullptr;
      ThrowErrno(env, "uv_poll_start", -err);
    }
    // While polling, the loop holds this object: JS may drop its reference.
    Ref();
  }

  ~RingReader() override { Stop(); }

 private:
  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingReader*>(ctx);
    const auto* bytes = static_cast<const uint8_t*>(data);
    self->batch_.emplace_back(bytes, bytes + size);
    return 0;
  }

  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<RingReader*>(handle->data);
    if (!self || !self->ring_) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      self->Deliver(env, Napi::Error::New(env, std::string("ring poll: ") + uv_strerror(status)).Value());
      return;
    }
    self->ConsumeAndDeliver(env);
  }

  // Consumes what is in the ring now and calls onBatch(records) when any.
  void ConsumeAndDeliver(Napi::Env env) {
    batch_.clear();
    int n = ring_buffer__consume(ring_);
    if (n < 0) {
      Deliver(env, Napi::Error::New(env, std::string("ring_buffer__consume: ") + std::strerror(-n)).Value());
      return;
    }
    if (batch_.empty()) return;
    Napi::Array records = Napi::Array::New(env, batch_.size());
    for (size_t i = 0; i < batch_.size(); i++)
      records.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, batch_[i].data(), batch_[i].size()));
    batch_.clear();
    Deliver(env, env.Null(), records);
  }

  // onBatch(error, records): a throwing callback becomes an uncaught exception, as in any uv callback.
  void Deliver(Napi::Env env, Napi::Value error, Napi::Value records = Napi::Value()) {
    try {
      on_batch_.MakeCallback(Value(), {error, records.IsEmpty() ? env.Undefined() : records});
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  void Stop() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (ring_) {
      ring_buffer__free(ring_);
      ring_ = nullptr;
    }
  }

  // drain(): consumes now (e.g. before close), delivering through onBatch.
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    if (ring_) ConsumeAndDeliver(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (ring_) {
      Stop();
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ring_ == nullptr); }

  ring_buffer* ring_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference on_batch_;
  std::vector<std::vector<uint8_t>> batch_;
};

}  // namespace

void InitRingbuf(Napi::Env env, Napi::Object exports) { exports.Set("RingReader", RingReader::Define(env)); }

}  // namespace bpfnet
