/**
 * Sockets for the agent's L7 proxy, made by the addon because Node cannot set these options
 * before they matter: IP_TRANSPARENT on the listener (it answers from the pod address the client
 * dialled, the datapath assigns redirected packets to it) and SO_MARK on upstream sockets (the
 * SYN already carries BPFNET_MARK_FROM_PROXY). Node owns the fds from here on:
 * `server.listen({ fd })`, `new net.Socket({ fd }).connect(…)`.
 */
import * as net from "net";
import { ABI_CONSTANTS } from "./abi";
import { native } from "./native";

/** A listening IPv4 TCP socket with IP_TRANSPARENT; port 0 lets the kernel choose. */
export function transparentListener(ip: string, port = 0, backlog = 511): number {
  if (net.isIPv4(ip) === false) throw new TypeError(`transparentListener: not an IPv4 address: ${JSON.stringify(ip)}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`transparentListener: port must be 0-65535, got ${port}`);
  return native().transparentListener(ip, port, backlog);
}

/** A TCP connection whose packets carry the proxy's upstream mark (the destination's ingress policy trusts it). */
export function connectFromProxy(ip: string, port: number): net.Socket {
  const s = new net.Socket({ fd: native().markedSocket(ABI_CONSTANTS.BPFNET_MARK_FROM_PROXY), readable: true, writable: true });
  return s.connect(port, ip);
}
