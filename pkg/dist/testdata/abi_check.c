// Built by TestABIMatchesMPIHeader with mpicc: it fails to compile when
// mpi_abi.h's types or constants differ from the real mpi.h, and exits
// non-zero when a DIST_SYM_* global is not the handle mpi.h's macro names.
#include <dlfcn.h>
#include <stdio.h>
#include <mpi.h>
#include "../mpi_abi.h"

#define SAME_TYPE(a, b) _Static_assert(__builtin_types_compatible_p(a, b), #a " is not " #b)
SAME_TYPE(dist_comm, MPI_Comm);
SAME_TYPE(dist_datatype, MPI_Datatype);
SAME_TYPE(dist_op, MPI_Op);
SAME_TYPE(dist_errhandler, MPI_Errhandler);
SAME_TYPE(dist_init_thread_fn, __typeof__(&MPI_Init_thread));
SAME_TYPE(dist_comm_rank_fn, __typeof__(&MPI_Comm_rank));
SAME_TYPE(dist_comm_size_fn, __typeof__(&MPI_Comm_size));
SAME_TYPE(dist_comm_set_errhandler_fn, __typeof__(&MPI_Comm_set_errhandler));
SAME_TYPE(dist_allreduce_fn, __typeof__(&MPI_Allreduce));
SAME_TYPE(dist_allgather_fn, __typeof__(&MPI_Allgather));
SAME_TYPE(dist_bcast_fn, __typeof__(&MPI_Bcast));
SAME_TYPE(dist_barrier_fn, __typeof__(&MPI_Barrier));
SAME_TYPE(dist_error_string_fn, __typeof__(&MPI_Error_string));
SAME_TYPE(dist_finalize_fn, __typeof__(&MPI_Finalize));
_Static_assert(DIST_MPI_SUCCESS == MPI_SUCCESS, "MPI_SUCCESS");
_Static_assert(DIST_MPI_THREAD_FUNNELED == MPI_THREAD_FUNNELED, "MPI_THREAD_FUNNELED");
_Static_assert(DIST_MPI_MAX_ERROR_STRING == MPI_MAX_ERROR_STRING, "MPI_MAX_ERROR_STRING");

static int check(const char *name, void *handle) {
	void *sym = dlsym(RTLD_DEFAULT, name);
	if (sym != handle) {
		printf("%s is at %p but mpi.h's handle is %p\n", name, sym, handle);
		return 1;
	}
	return 0;
}

int main(void) {
	int bad = 0;
	if (DIST_MPI_IN_PLACE != MPI_IN_PLACE) {
		printf("MPI_IN_PLACE is %p, not %p\n", MPI_IN_PLACE, DIST_MPI_IN_PLACE);
		bad = 1;
	}
	bad |= check(DIST_SYM_COMM_WORLD, (void *)MPI_COMM_WORLD);
	bad |= check(DIST_SYM_FLOAT, (void *)MPI_FLOAT);
	bad |= check(DIST_SYM_BYTE, (void *)MPI_BYTE);
	bad |= check(DIST_SYM_OP_SUM, (void *)MPI_SUM);
	bad |= check(DIST_SYM_ERRORS_RETURN, (void *)MPI_ERRORS_RETURN);
	if (!bad) printf("mpi_abi.h matches mpi.h\n");
	return bad;
}
