/** Published in the node record so operators see which agent each host runs. */
export const AGENT_VERSION = "0.1.0";
