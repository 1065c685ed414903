#include "connectors/kafka_common.hpp"

#include <array>

namespace simstream::connectors::kafka {

Status SetProperty(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  std::array<char, 512> err{};
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err.data(), err.size()) !=
      RD_KAFKA_CONF_OK) {
    return Error{"invalid_config", "kafka property '" + key + "': " + err.data()};
  }
  return Status::Ok();
}

Result<ConfPtr> MakeConf(const config::KafkaOptions& opts,
                         const std::map<std::string, std::string>& defaults,
                         const std::map<std::string, std::string>& forced) {
  ConfPtr conf(rd_kafka_conf_new());
  if (auto st = SetProperty(conf.get(), "bootstrap.servers", opts.brokers); !st.ok()) {
    return st.error();
  }
  for (const auto* layer : {&defaults, &opts.properties, &forced}) {
    for (const auto& [key, value] : *layer) {
      if (auto st = SetProperty(conf.get(), key, value); !st.ok()) return st.error();
    }
  }
  return conf;
}

Result<HandlePtr> MakeHandle(rd_kafka_type_t type, ConfPtr conf) {
  std::array<char, 512> err{};
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err.data(), err.size());
  if (rk == nullptr) {
    return Error{"kafka_error", std::string("creating the Kafka client: ") + err.data()};
  }
  conf.release();  // owned by rk now
  return HandlePtr(rk);
}

Error KafkaError(const std::string& what, rd_kafka_resp_err_t err) {
  return Error{"kafka_error", what + ": " + rd_kafka_err2str(err)};
}

std::string HeaderValue(const rd_kafka_message_t* msg, const char* name) {
  rd_kafka_headers_t* hdrs = nullptr;
  // The headers belong to the message; rd_kafka_message_headers does not transfer ownership.
  if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr) {
    return {};
  }
  return std::string(static_cast<const char*>(value), size);
}

}  // namespace simstream::connectors::kafka
