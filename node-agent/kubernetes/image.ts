// The agent's container image: its name and where it carries the release and Node.js. Shared by
// the KubernetesNetwork component (the DaemonSet's image and commands) and
// scripts/build-agent-image.js (which builds it from the agent bundle).
import { AGENT_VERSION } from "../version";

/** The image's repository name. */
export const AGENT_IMAGE_REPOSITORY = "bpfnet/agent";
/** Where the image carries the agent release (the bundle's contents). Not /opt/bpfnet: the init container mounts the host's install directory (default /opt/bpfnet) at its host path, which would hide the image's own files there. */
export const IMAGE_RELEASE_DIR = "/usr/local/lib/bpfnet";
/** The Node.js runtime in the image. */
export const IMAGE_NODE = "/usr/local/bin/node";

/** The image for a bundle: the agent's version and the bundle's digest, so a new bundle is a new tag (and rolls the DaemonSet). */
export function agentImageRef(bundleSha256: string): string {
  return `${AGENT_IMAGE_REPOSITORY}:${AGENT_VERSION}-${bundleSha256.slice(0, 12)}`;
}
