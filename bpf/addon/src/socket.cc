// Sockets for the agent's L7 proxy with options Node cannot set before they matter:
// IP_TRANSPARENT on the listener (the kernel sends its SYN-ACKs from the pod address the client
// dialled) and SO_MARK on upstream sockets (set before connect, so the SYN carries it). The fds
// go back to Node (net.Server.listen({ fd }), new net.Socket({ fd })), which owns them from then on.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bpfnet.h"

namespace bpfnet {
namespace {

int TcpSocket(Napi::Env env, const char* op) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, op, errno, "socket");
  return fd;
}

void SetInt(Napi::Env env, int fd, int level, int name, int value, const char* op, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, op, err, what);
  }
}

// transparentListener(ip, port, backlog) → fd: bound and listening, IP_TRANSPARENT set.
Napi::Value TransparentListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ip = ArgString(info, 0, "ip");
  uint32_t port = ArgU32(info, 1, "port");
  uint32_t backlog = ArgU32(info, 2, "backlog");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (port > 65535 || inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) throw Napi::RangeError::New(env, "transparentListener: bad IPv4 address or port");
  int fd = TcpSocket(env, "transparentListener");
  SetInt(env, fd, SOL_SOCKET, SO_REUSEADDR, 1, "transparentListener", "SO_REUSEADDR");
  SetInt(env, fd, SOL_IP, IP_TRANSPARENT, 1, "transparentListener", "IP_TRANSPARENT");
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 || listen(fd, static_cast<int>(backlog)) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "transparentListener", err, ip + ":" + std::to_string(port));
  }
  return Napi::Number::New(env, fd);
}

// markedSocket(mark) → fd: an unconnected TCP socket whose packets carry skb->mark = mark.
Napi::Value MarkedSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t mark = ArgU32(info, 0, "mark");
  int fd = TcpSocket(env, "markedSocket");
  SetInt(env, fd, SOL_SOCKET, SO_MARK, static_cast<int>(mark), "markedSocket", "SO_MARK");
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("transparentListener", Napi::Function::New<TransparentListener>(env, "transparentListener"));
  exports.Set("markedSocket", Napi::Function::New<MarkedSocket>(env, "markedSocket"));
}

}  // namespace bpfnet
