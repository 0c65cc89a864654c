# A BLAS for the layers' matrix products. hubel calls it from many TBB tasks at once, each
# call single-threaded. Debian's serial OpenBLAS (libopenblas0-serial) is built
# SINGLE_THREADED, without locks around its buffer pool: concurrent calls from two threads
# can share a buffer and return wrong products (seen here as nondeterministic training with
# 2 threads). The pthread build locks its pool; hubel sets it to one thread per call
# (layers/gemm.cpp), so it starts no computing threads of its own. Its directory is
# searched first and recorded in the RPATH (the builds share a soname).
set(HUBEL_OPENBLAS_DIR "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-pthread")
if(EXISTS "${HUBEL_OPENBLAS_DIR}")
  list(PREPEND CMAKE_LIBRARY_PATH "${HUBEL_OPENBLAS_DIR}")
endif()
if(NOT DEFINED BLA_VENDOR)
  set(BLA_VENDOR OpenBLAS)
endif()
find_package(BLAS REQUIRED)
