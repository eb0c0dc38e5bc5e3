/* SPDX-License-Identifier: MIT */
/*
 * The vCPU pool. A vCPU costs a KVM_CREATE_VCPU, its guest area and its setup,
 * so vCPUs are created on demand, returned when their vthread ends and reused;
 * their number never exceeds what KVM allows for one VM.
 */
#include <errno.h>
#include <stdlib.h>

#include "rt.h"

/* Gives a created vCPU its guest area and its architectural state. */
int rt_vcpu_new(struct hv_vcpu *vc)
{
	struct hv_layout lay = {
		.cr3 = mm_gpa(&rt.mm, rt.mm.pml4),
		.idt = rt.idt,
	};
	int r;

	vc->area = mm_alloc(&rt.mm, HV_VCPU_AREA_SIZE);
	if (!vc->area)
		return -ENOMEM;
	lay.area_gpa = mm_gpa(&rt.mm, vc->area);
	r = hv_vcpu_setup(vc, &lay);
	if (r < 0) {
		mm_free(vc->area, HV_VCPU_AREA_SIZE);
		vc->area = NULL;
		return r;
	}
	if (!rt.vcpus) {
		rt.vcpus = calloc(rt.hv.max_vcpus, sizeof(*rt.vcpus));
		rt.idle = calloc(rt.hv.max_vcpus, sizeof(*rt.idle));
		if (!rt.vcpus || !rt.idle) {
			mm_free(vc->area, HV_VCPU_AREA_SIZE);
			vc->area = NULL;
			return -ENOMEM;
		}
	}
	rt.vcpus[rt.nvcpus++] = vc;
	return 0;
}

/* -EAGAIN when KVM allows no more vCPUs and none is idle, as pthread_create's EAGAIN. */
int rt_vcpu_get(struct hv_vcpu **out)
{
	struct hv_vcpu *vc;
	int r;

	pthread_mutex_lock(&rt.pool_lock);
	if (rt.nidle) {
		*out = rt.idle[--rt.nidle];
		pthread_mutex_unlock(&rt.pool_lock);
		return 0;
	}
	r = -EAGAIN;
	if ((int)rt.nvcpus >= rt.hv.max_vcpus)
		goto out;
	vc = malloc(sizeof(*vc));
	if (!vc)
		goto out;
	r = hv_vcpu_create(&rt.hv, vc, rt.nvcpus);
	if (!r) {
		r = rt_vcpu_new(vc);
		if (r < 0)
			hv_vcpu_destroy(vc);
	}
	if (r < 0) {
		free(vc);
		r = -EAGAIN;
	} else {
		*out = vc;
	}
out:
	pthread_mutex_unlock(&rt.pool_lock);
	return r;
}

void rt_vcpu_put(struct hv_vcpu *vc)
{
	pthread_mutex_lock(&rt.pool_lock);
	rt.idle[rt.nidle++] = vc;
	pthread_mutex_unlock(&rt.pool_lock);
}

/* In a fork child: the vCPUs belong to the parent's VM. */
void rt_vcpu_forget_all(void)
{
	for (unsigned i = 0; i < rt.nvcpus; i++) {
		mm_free(rt.vcpus[i]->area, HV_VCPU_AREA_SIZE);
		hv_vcpu_destroy(rt.vcpus[i]);
		free(rt.vcpus[i]);
	}
	free(rt.vcpus);
	free(rt.idle);
	rt.vcpus = rt.idle = NULL;
	rt.nvcpus = rt.nidle = 0;
}
