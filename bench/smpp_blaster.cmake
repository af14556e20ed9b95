# bench/smpp_blaster: the bare SMPP baseline (binds to smsc_sim, submits as fast as the window allows).
add_executable(smpp_blaster ${CMAKE_CURRENT_LIST_DIR}/smpp_blaster.c)
target_link_libraries(smpp_blaster PRIVATE tocsin_proto PkgConfig::OPENSSL)
