# bench/smsc_sim: a standalone SMPP 3.4 SMSC for the SMS adapter's tests and benchmarks.
add_executable(smsc_sim ${CMAKE_CURRENT_LIST_DIR}/smsc_sim.c)
target_link_libraries(smsc_sim PRIVATE tocsin_proto PkgConfig::OPENSSL)
