# bench/terminal_swarm.cmake: the terminal swarm (simulated broadcast
# terminals, epoll) and the bare fan-out baseline (io_uring direct
# descriptors over several rings) for bench/terminal_fanout.py.
add_executable(terminal_swarm ${CMAKE_CURRENT_LIST_DIR}/terminal_swarm.c)
target_link_libraries(terminal_swarm PRIVATE tocsin_proto PkgConfig::OPENSSL)
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/fanout_blaster.c)
  add_executable(fanout_blaster ${CMAKE_CURRENT_LIST_DIR}/fanout_blaster.c)
  target_link_libraries(fanout_blaster PRIVATE PkgConfig::URING)
endif()

# Several swarm processes sharing one population (--first, --src-base), their
# times merged, against the bare loop; the bare loop over three io_uring rings
# with its own receivers; and a swarm asked for more sockets than one process
# may hold, which must refuse at start-up and say why.
add_test(NAME bench_terminal_swarm_split
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/terminal_fanout.py ${CMAKE_BINARY_DIR}
          --systems tocsind bare --conns 4000 --rounds 1 --per-swarm 1500)
add_test(NAME bench_terminal_blaster_rings
  COMMAND fanout_blaster --conns 3000 --frame 1024 --rings 3)
add_test(NAME bench_terminal_swarm_limit
  COMMAND sh -c "ulimit -n 1000 && ulimit -Hn 1000 && exec \"$0\" --mode raw --frame 1 --count 2000 --target 127.0.0.1:9"
          $<TARGET_FILE:terminal_swarm>)
set_tests_properties(bench_terminal_swarm_split bench_terminal_blaster_rings
  PROPERTIES LABELS integration TIMEOUT 120)
set_tests_properties(bench_terminal_swarm_limit PROPERTIES LABELS integration TIMEOUT 30
  PASS_REGULAR_EXPRESSION "2000 terminals need 2256 descriptors, but one process holds at most 1000")

# The swarm's login deadline: terminals whose connection never gets a
# Challenge (a gateway that dropped it) give up, count it and reconnect.
add_test(NAME bench_terminal_swarm_login
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_swarm_login.py
          $<TARGET_FILE:terminal_swarm>)
set_tests_properties(bench_terminal_swarm_login PROPERTIES LABELS integration TIMEOUT 60)
