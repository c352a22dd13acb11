// What a ServiceAccount may do, asked of the API server itself (a SubjectAccessReview): the RBAC
// checks of the Kubernetes tests judge the real authorizer, not our reading of the rules.
import { KubeAccess, kubeRequest } from "../../../lab/kubeApi";

/** A checker for ServiceAccount `account` of `namespace`; a question without a namespace is cluster-wide. */
export function serviceAccountCan(api: KubeAccess, namespace: string, account: string) {
  const user = `system:serviceaccount:${namespace}:${account}`;
  const groups = ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"];
  return async (verb: string, resource: string, name?: string, inNamespace: string | undefined = namespace): Promise<boolean> => {
    const r = await kubeRequest(api, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: { user, groups, resourceAttributes: { verb, resource, name, namespace: inNamespace } },
    });
    if (r.status !== 201) throw new Error(`SubjectAccessReview: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body.status.allowed === true;
  };
}
