# The push adapter end to end: bench/push_sim (h2c and TLS), a private
# redis-server, and node's http2 module as an independent peer.
add_executable(test_push ${CMAKE_CURRENT_LIST_DIR}/test_push.c)
target_link_libraries(test_push PRIVATE tocsin_adapters)
# the test drives the adapter's wall clock (JWT refresh policy across 20 minutes)
target_link_options(test_push PRIVATE -Wl,--wrap=loop_wall_s)
add_test(NAME integration_push
  COMMAND test_push $<TARGET_FILE:push_sim> ${CMAKE_CURRENT_LIST_DIR}/test_push_node.js)
set_tests_properties(integration_push PROPERTIES LABELS integration TIMEOUT 180 SKIP_RETURN_CODE 77)

# The same misbehaving sink through tocsind: ledger counts against the sink's.
add_test(NAME integration_push_e2e
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_push_e2e.py ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
set_tests_properties(integration_push_e2e PROPERTIES LABELS integration TIMEOUT 180)
