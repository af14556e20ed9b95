# bench/terminal_swarm.cmake: the terminal swarm (simulated broadcast
# terminals, epoll) and the bare fan-out baseline (io_uring direct
# descriptors over several rings) for bench/terminal_fanout.py.
add_executable(terminal_swarm ${CMAKE_CURRENT_LIST_DIR}/terminal_swarm.c)
target_link_libraries(terminal_swarm PRIVATE tocsin_proto PkgConfig::OPENSSL)
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/fanout_blaster.c)
  add_executable(fanout_blaster ${CMAKE_CURRENT_LIST_DIR}/fanout_blaster.c)
  target_link_libraries(fanout_blaster PRIVATE PkgConfig::URING)
endif()
