# bench/fd_probe: sockets one process can hold as io_uring direct descriptors (issue 7's 100,000).
add_executable(fd_probe ${CMAKE_CURRENT_LIST_DIR}/fd_probe.c)
target_link_libraries(fd_probe PRIVATE PkgConfig::URING)
