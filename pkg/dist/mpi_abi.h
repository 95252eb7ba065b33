// The part of OpenMPI's C ABI (libmpi.so.40: OpenMPI 3.0 to 5.x) that
// package dist calls. pkg/dist loads libmpi with dlopen only when mpirun
// started the process, so the build needs neither mpi.h nor libmpi; these
// declarations stand in for mpi.h and TestABIMatchesMPIHeader checks them
// against the real header.
//
// Handles are pointers to OpenMPI's opaque structs; the predefined ones
// (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) are the addresses of the exported
// globals named by the DIST_SYM_* strings.
#ifndef MOCHI_DIST_MPI_ABI_H
#define MOCHI_DIST_MPI_ABI_H

typedef struct ompi_communicator_t *dist_comm;
typedef struct ompi_datatype_t *dist_datatype;
typedef struct ompi_op_t *dist_op;
typedef struct ompi_errhandler_t *dist_errhandler;

#define DIST_MPI_SUCCESS 0
#define DIST_MPI_THREAD_FUNNELED 1
#define DIST_MPI_MAX_ERROR_STRING 256
#define DIST_MPI_IN_PLACE ((void *)1)

#define DIST_SYM_COMM_WORLD "ompi_mpi_comm_world"
#define DIST_SYM_FLOAT "ompi_mpi_float"
#define DIST_SYM_BYTE "ompi_mpi_byte"
#define DIST_SYM_OP_SUM "ompi_mpi_op_sum"
#define DIST_SYM_ERRORS_RETURN "ompi_mpi_errors_return"

typedef int (*dist_init_thread_fn)(int *argc, char ***argv, int required, int *provided);
typedef int (*dist_comm_rank_fn)(dist_comm comm, int *rank);
typedef int (*dist_comm_size_fn)(dist_comm comm, int *size);
typedef int (*dist_comm_set_errhandler_fn)(dist_comm comm, dist_errhandler errhandler);
typedef int (*dist_allreduce_fn)(const void *sendbuf, void *recvbuf, int count,
                                 dist_datatype datatype, dist_op op, dist_comm comm);
typedef int (*dist_allgather_fn)(const void *sendbuf, int sendcount, dist_datatype sendtype,
                                 void *recvbuf, int recvcount, dist_datatype recvtype,
                                 dist_comm comm);
typedef int (*dist_bcast_fn)(void *buffer, int count, dist_datatype datatype, int root,
                             dist_comm comm);
typedef int (*dist_barrier_fn)(dist_comm comm);
typedef int (*dist_error_string_fn)(int errorcode, char *string, int *resultlen);
typedef int (*dist_finalize_fn)(void);

#endif
