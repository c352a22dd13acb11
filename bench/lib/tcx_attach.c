/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tcx_attach PROG_ID IFINDEX: attaches a loaded program (by id) to a device's tcx ingress
 * hook (kernel >= 6.6, BPF_PROG_ATTACH without a link: it stays until detached or the device
 * goes), in the calling process's network namespace. bench/datapath.ts uses it to compare
 * bpf_lxc on tcx with bpf_lxc on the clsact qdisc (cls_bpf) in the same rounds. The system's
 * uapi headers predate tcx, hence the raw attach type.
 */
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TCX_INGRESS 46	/* enum bpf_attach_type BPF_TCX_INGRESS (6.6) */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

int main(int argc, char **argv)
{
	union bpf_attr attr;
	long fd;

	if (argc != 3) {
		fprintf(stderr, "usage: tcx_attach PROG_ID IFINDEX\n");
		return 2;
	}
	memset(&attr, 0, sizeof(attr));
	attr.prog_id = (unsigned)strtoul(argv[1], NULL, 10);
	fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
	if (fd < 0) {
		perror("BPF_PROG_GET_FD_BY_ID");
		return 1;
	}
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = (unsigned)strtoul(argv[2], NULL, 10);	/* target_ifindex for tcx */
	attr.attach_bpf_fd = (unsigned)fd;
	attr.attach_type = TCX_INGRESS;
	if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0) {
		perror("BPF_PROG_ATTACH tcx ingress");
		return 1;
	}
	return 0;
}
