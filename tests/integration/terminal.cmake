# tests/integration/terminal.cmake: the terminal gateway against a private
# redis-server and bench/terminal_swarm (10,000-connection scale check).
add_executable(test_terminal ${CMAKE_CURRENT_LIST_DIR}/test_terminal.c)
target_link_libraries(test_terminal PRIVATE tocsin_adapters)
add_test(NAME integration_terminal
  COMMAND test_terminal $<TARGET_FILE:tocsin> $<TARGET_FILE:terminal_swarm> 10000)
set_tests_properties(integration_terminal PROPERTIES LABELS integration TIMEOUT 300
  SKIP_RETURN_CODE 77)

# Readiness per segment in tocsind's /v1/status and /metrics, against a
# generated district and a swarm holding part of its terminals; terminals'
# Status reports (faults, volume) in the same places.
add_test(NAME integration_terminal_status
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_terminal_status.py
          ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
set_tests_properties(integration_terminal_status PROPERTIES LABELS integration TIMEOUT 300)
