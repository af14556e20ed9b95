# bench/push_sim: APNs / FCM / webhook simulator (HTTP/2, nghttp2) for the push adapter.
add_executable(push_sim ${CMAKE_CURRENT_LIST_DIR}/push_sim.c)
target_link_libraries(push_sim PRIVATE tocsin_proto PkgConfig::NGHTTP2 PkgConfig::OPENSSL Threads::Threads)
