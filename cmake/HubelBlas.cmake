# A BLAS for the layers' matrix products. hubel calls it from many TBB tasks at once and
# wants each call single-threaded, so the serial OpenBLAS build is preferred: Debian puts
# it in its own directory, which is searched first (and recorded in the RPATH, since the
# threaded build has the same soname).
set(HUBEL_OPENBLAS_SERIAL_DIR "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-serial")
if(EXISTS "${HUBEL_OPENBLAS_SERIAL_DIR}")
  list(PREPEND CMAKE_LIBRARY_PATH "${HUBEL_OPENBLAS_SERIAL_DIR}")
endif()
if(NOT DEFINED BLA_VENDOR)
  set(BLA_VENDOR OpenBLAS)
endif()
find_package(BLAS REQUIRED)
