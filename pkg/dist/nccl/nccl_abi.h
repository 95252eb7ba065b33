// The part of NCCL's C ABI (libnccl.so.2: NCCL 2.x) that package nccl
// calls. The GPU build loads libnccl with dlopen, so it needs neither
// nccl.h nor libnccl to build; these declarations stand in for nccl.h
// (NCCL 2.4 and later; ncclGetLastError, 2.13 and later, is optional).
// Values as nccl.h defines them: NCCL_UNIQUE_ID_BYTES 128; ncclResult_t
// ncclSuccess 0, ncclInProgress 7; ncclDataType_t ncclInt32 2,
// ncclFloat32 7; ncclRedOp_t ncclSum 0. The enums are passed as int (their
// size in NCCL's ABI); the unique id is a struct of 128 chars passed by
// value; a cudaStream_t of NULL is the default stream.
#ifndef MOCHI_NCCL_ABI_H
#define MOCHI_NCCL_ABI_H

#include <stddef.h>

typedef struct ncclComm *nccl_comm;

#define NCCL_ABI_UNIQUE_ID_BYTES 128
typedef struct {
	char internal[NCCL_ABI_UNIQUE_ID_BYTES];
} nccl_unique_id;

typedef int nccl_result;
#define NCCL_ABI_SUCCESS 0
#define NCCL_ABI_IN_PROGRESS 7

#define NCCL_ABI_INT32 2
#define NCCL_ABI_FLOAT32 7
#define NCCL_ABI_SUM 0

typedef nccl_result (*nccl_get_version_fn)(int *version);
typedef nccl_result (*nccl_get_unique_id_fn)(nccl_unique_id *id);
typedef nccl_result (*nccl_comm_init_rank_fn)(nccl_comm *comm, int nranks, nccl_unique_id id, int rank);
typedef nccl_result (*nccl_all_reduce_fn)(const void *sendbuf, void *recvbuf, size_t count, int datatype,
                                          int op, nccl_comm comm, void *stream);
typedef nccl_result (*nccl_all_gather_fn)(const void *sendbuf, void *recvbuf, size_t sendcount, int datatype,
                                          nccl_comm comm, void *stream);
typedef nccl_result (*nccl_group_fn)(void);
typedef nccl_result (*nccl_comm_get_async_error_fn)(nccl_comm comm, nccl_result *async_error);
typedef nccl_result (*nccl_comm_fn)(nccl_comm comm); // ncclCommDestroy, ncclCommAbort
typedef const char *(*nccl_get_error_string_fn)(nccl_result result);
typedef const char *(*nccl_get_last_error_fn)(nccl_comm comm);

#endif
