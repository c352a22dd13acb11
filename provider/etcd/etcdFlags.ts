// The extra etcd settings a user may pass (EtcdCluster.flags): keys from etcd's own list of
// flags (`etcd --help` of 3.4/3.5; the config file uses the flag names), minus the ones bpfnet
// writes itself. Values are plain YAML scalars, so they keep to a character set that YAML reads
// as one scalar and that cannot start another key (no newline, "#", quotes, ": ").
import { isUnknown } from "../common/unknown";

/** Top-level keys of etcd's config file that the user may set. */
export const ETCD_USER_FLAGS: readonly string[] = [
  "auth-token", "auth-token-ttl", "auto-compaction-mode", "auto-compaction-retention",
  "backend-batch-interval", "backend-batch-limit", "bcrypt-cost", "cipher-suites", "cors", "debug",
  "election-timeout", "enable-pprof", "enable-v2", "experimental-backend-bbolt-freelist-type",
  "experimental-compaction-batch-limit", "experimental-corrupt-check-time", "experimental-enable-lease-checkpoint",
  "experimental-enable-v2v3", "experimental-initial-corrupt-check", "experimental-peer-skip-client-san-verification",
  "experimental-warning-apply-duration", "experimental-watch-progress-notify-interval", "grpc-keepalive-interval",
  "grpc-keepalive-min-time", "grpc-keepalive-timeout", "heartbeat-interval", "host-whitelist",
  "initial-election-tick-advance", "listen-metrics-urls", "log-level", "log-package-levels", "max-concurrent-streams",
  "max-request-bytes", "max-snapshots", "max-txn-ops", "max-wals", "metrics", "pre-vote", "quota-backend-bytes",
  "snapshot-count", "strict-reconfig-check", "wal-dir",
];

/** Keys bpfnet writes (identity, URLs, bootstrap, TLS, logging): a user value would fight them. */
export const ETCD_BPFNET_FLAGS: readonly string[] = [
  "name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls", "initial-advertise-peer-urls",
  "initial-cluster", "initial-cluster-token", "initial-cluster-state", "client-transport-security", "peer-transport-security",
  "cert-file", "key-file", "trusted-ca-file", "client-cert-auth", "auto-tls", "peer-cert-file", "peer-key-file",
  "peer-trusted-ca-file", "peer-client-cert-auth", "peer-auto-tls", "client-crl-file", "peer-crl-file",
  "client-cert-allowed-hostname", "peer-cert-allowed-cn", "peer-cert-allowed-hostname", "logger", "log-outputs",
];

// Numbers, durations, booleans, words, URLs and comma lists: "1", "5m", "true", "http://127.0.0.1:2381,http://x:1".
const FLAG_VALUE = /^[A-Za-z0-9_.,:/=+-]{1,1024}$/;

/** Problems with a flags map, each naming `<field>.<key>` and the value. */
export function etcdFlagProblems(field: string, flags: unknown): string[] {
  if (flags === undefined || isUnknown(flags)) return [];
  if (flags === null || typeof flags !== "object" || Array.isArray(flags)) return [`${field} must be a map of etcd flag names to values, got ${JSON.stringify(flags)}`];
  const problems: string[] = [];
  for (const [key, value] of Object.entries(flags as Record<string, unknown>)) {
    if (ETCD_BPFNET_FLAGS.includes(key)) {
      problems.push(`${field}: bpfnet sets etcd's ${JSON.stringify(key)} itself; remove it from ${field}`);
    } else if (!ETCD_USER_FLAGS.includes(key)) {
      problems.push(`${field}: ${JSON.stringify(key)} is not one of etcd's flags (see \`etcd --help\`), e.g. "auto-compaction-retention"`);
    } else if (!isUnknown(value) && (typeof value !== "string" || !FLAG_VALUE.test(value) || value.split(/[/,]/).includes(".."))) {
      problems.push(`${field}.${key} must be one word of letters, digits and "_.,:/=+-" (no space, newline, quote, "#" or ".." segment), got ${JSON.stringify(value)}`);
    }
  }
  return problems;
}
